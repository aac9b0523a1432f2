#!/usr/bin/env bash
# Runs inside the new conda env, from the workflow's root directory (Snakemake's working directory).
set -euo pipefail
pip install --no-deps .
