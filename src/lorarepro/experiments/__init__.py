"""The small per-rule scripts, one package per paper: read inputs, run, write run records, tables and figures."""
