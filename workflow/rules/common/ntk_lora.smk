# Helper functions of the ntk_lora rules (kept apart from rules, as the Snakemake linter asks).
