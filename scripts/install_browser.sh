#!/usr/bin/env bash
# Make sure a Chromium for the browser test exists (tests/test_browser.py drives it headless).
#
# Debian's `chromium` package is used, not Playwright's own browser download. Nothing happens
# when a Chromium is already installed. Installing needs root and apt-get; without them the
# script only says what is missing and exits 0, and the browser test skips itself with that reason.
# Set CHROMIUM to use a browser at another path.
set -euo pipefail

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: $chromium is missing and cannot be installed here" \
         "(needs root and apt-get); the browser test will be skipped." >&2
    exit 0
fi
echo "install_browser.sh: installing Debian's chromium (a minute or two)..."
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    echo "install_browser.sh: apt-get could not install chromium; the browser test will be skipped." >&2
elif [ ! -x "$chromium" ]; then
    echo "install_browser.sh: Debian's chromium is installed, but there is no $chromium;" \
         "the browser test will be skipped." >&2
else
    echo "install_browser.sh: $("$chromium" --version 2>/dev/null)"
fi
