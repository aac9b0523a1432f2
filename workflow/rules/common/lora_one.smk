# Helper functions of the lora_one rules (kept apart from rules, as the Snakemake linter asks).
