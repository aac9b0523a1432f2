"""LoRA-One: linear/ReLU fine-tuning toys (Figs 2-4, Thm C.21) and the MNIST experiment (Fig 1c)."""
