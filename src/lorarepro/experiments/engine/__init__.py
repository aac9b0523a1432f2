"""Generic entry points of the fine-tuning engine, shared by the language-model experiments."""
