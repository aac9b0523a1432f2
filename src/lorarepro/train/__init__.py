"""Fine-tuning transformer models: objectives per task kind, one training loop, checkpoints, run assembly."""
