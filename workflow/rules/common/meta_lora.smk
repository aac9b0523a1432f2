# Helper functions of the meta_lora rules (kept apart from rules, as the Snakemake linter asks).
