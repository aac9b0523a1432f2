#!/usr/bin/env bash
# The benchmark suite (not part of the tests): each writes a run record under results/benchmarks/.
# Ratios are measured side by side in one process, so they hold on a noisy machine.
# rule_costs summarises the last reproduction; run `bash scripts/reproduce.sh` first for default-scale numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
for bench in benchmarks/*.py; do
  echo "== $bench"
  python "$bench"
done
