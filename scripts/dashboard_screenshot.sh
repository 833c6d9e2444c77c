#!/usr/bin/env bash
# Rewrites docs/dashboard.png from the browser test's seeded fleet. Run on purpose, then commit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LIGHTFENCE_DASHBOARD_SCREENSHOT="$PWD/docs/dashboard.png" .venv/bin/pytest -q \
  "tests/dashboard/test_browser.py::test_map_renders_chips_regions_landmarks_without_console_errors"
