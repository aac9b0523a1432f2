"""LoRA parameterisations and initialisations, as matrix-level functions and on PEFT models."""
