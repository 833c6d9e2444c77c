#!/usr/bin/env bash
# The main job on a fresh machine: set-up, then the live demo. Extra args go to `lightfence demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lightfence demo "$@"
