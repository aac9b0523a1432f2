#!/usr/bin/env bash
# The test suite: unit tests, workflow tests (dry-runs, lint, the smoke DAG) and the local-SLURM test.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k config`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Jobs call `python`: the venv's, whether or not it is activated.
export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
