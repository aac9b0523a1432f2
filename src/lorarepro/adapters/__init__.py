"""LoRA parameterisations and initialisations as matrix-level functions: given W and/or its gradient, the factors."""
