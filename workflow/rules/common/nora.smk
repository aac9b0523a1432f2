# Helper functions of the nora rules (kept apart from rules, as the Snakemake linter asks).
