#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver for the dashboard tests (Debian packages; browser
# downloads do not work offline). Idempotent: does nothing when both are already present, and
# never fails the build: without root or apt-get it says why and the browser tests skip.
# Usage: scripts/install_browser.sh
set -euo pipefail

have_browser() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have_browser && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_browser: not root; cannot apt-get chromium/chromium-driver (browser tests will skip)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get; install chromium and chromedriver yourself (browser tests will skip)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; }; then
  echo "install_browser: apt-get failed; browser tests will skip"
  exit 0
fi
