#!/usr/bin/env bash
# Make Debian's headless Chromium available for the report test (tests/test_report_browser.py).
# Installs it with apt when missing and we may (root, apt present); otherwise says why and leaves the
# browser test to skip with that message (a user's laptop). CI runs as root and installs it.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[ci] installing Debian chromium for the report test …"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    && { echo "[ci] $(chromium --version)"; exit 0; }
  echo "[ci] apt-get could not install chromium" >&2
  exit 1
fi
echo "[ci] chromium is not installed and cannot be installed here (not root or no apt);" \
     "the headless-browser report test will skip. Install Debian's 'chromium' to run it."
exit 0
