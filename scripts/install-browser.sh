#!/usr/bin/env bash
# Debian's chromium and chromium-driver, for the browser tests (tests/browser) and
# bench/web_page.py; Playwright drives this chromium (its own browser download is not
# reachable from these machines).
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
