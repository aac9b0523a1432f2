#!/usr/bin/env bash
# The whole default reproduction: every figure, table, claim check and report, offline on CPU.
# Extra arguments go to Snakemake, e.g. `bash scripts/reproduce.sh nora` or `... --config scale=smoke`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Jobs call `python`: the venv's, whether or not it is activated.
export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
exec .venv/bin/snakemake --cores "${CORES:-all}" "$@"
