#!/usr/bin/env bash
# The whole check on a fresh machine: set-up, lint, types, tests. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the dashboard tests (apt-get as root; skipped tests say why otherwise).
bash scripts/install_browser.sh
# Natural Earth 1:10m (world-atlas, the boundary build's source) for tests/geo/test_boundary_bound.py;
# without npm or the registry that test is skipped and says why.
atlas="$HOME/.cache/lightfence/world-atlas-2.0.2.tgz"
if [ ! -f "$atlas" ] && command -v npm >/dev/null; then
  mkdir -p "$(dirname "$atlas")"
  npm pack world-atlas@2.0.2 --pack-destination "$(dirname "$atlas")" --silent >/dev/null \
    || echo "world-atlas@2.0.2 not fetched: the boundary bound test will be skipped"
fi
# PostgreSQL server binaries: the verifier's tests also run on PostgreSQL and start a throw-away
# cluster themselves (tests/verifier/pg_cluster.py); without them those cases are skipped.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
      >/dev/null || echo "postgresql not installed: the PostgreSQL test cases will be skipped"
  else
    echo "no PostgreSQL server and not root with apt-get: the PostgreSQL test cases will be skipped"
  fi
fi
.venv/bin/ruff check .
.venv/bin/mypy
# One pytest worker per core (at most 4): the suite is mostly CPU-bound processes and servers,
# and one worker left the second core half idle (11.6 min against 6.2 min with two on 2 cores).
workers=$(nproc)
if [ "$workers" -gt 4 ]; then workers=4; fi
set +e
.venv/bin/pytest -n "$workers" "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests; that is not a failure of the code.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  rc=0
fi
exit "$rc"
