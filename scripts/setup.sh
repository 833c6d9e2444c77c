#!/usr/bin/env bash
# Creates .venv (once) and installs Lightfence with its test tools and the simulator's extra
# (`sim`: plotting); re-runs pip only when pyproject.toml changed. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.lightfence-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test,sim]'
  touch "$stamp"
fi
