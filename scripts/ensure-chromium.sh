#!/usr/bin/env bash
# The playground's browser tests (tests/integration/test_playground.py) and screenshots drive
# Debian's chromium through Playwright (Playwright's own browser download is never used: it is
# unreachable offline). Install the chromium package where none is on PATH (needs root or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "chromium not found: installing Debian's chromium package" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
chromium --version
