# Helper functions of the deep_lora rules (kept apart from rules, as the Snakemake linter asks).
