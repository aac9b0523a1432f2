#!/usr/bin/env bash
# The test suite: unit tests, workflow tests (dry-runs, lint, the smoke DAG) and the local-SLURM test.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k config`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
