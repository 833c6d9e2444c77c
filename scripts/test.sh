#!/usr/bin/env bash
# The whole check on a fresh machine: set-up, lint, types, tests. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the dashboard tests (apt-get as root; skipped tests say why otherwise).
bash scripts/install_browser.sh
.venv/bin/ruff check .
.venv/bin/mypy
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests; that is not a failure of the code.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  rc=0
fi
exit "$rc"
