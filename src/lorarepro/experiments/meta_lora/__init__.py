"""Meta-LoRA (Block et al.): retraining on T tasks (SR vs LoRA-ML), then LoRA fine-tuning on a new task;
the linear and shallow-network experiments of Figures 1-5 and the theory checks."""
