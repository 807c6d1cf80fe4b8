#!/usr/bin/env bash
# Headless Chromium for the web app's browser tests (tests/app, marker `browser`). Debian's own
# package, driven by the pinned python `playwright` through executable_path: Playwright's own
# browser download is never used (no network beyond the package registries). Ubuntu ships
# chromium as a snap, which is not /usr/bin/chromium: install Debian's, or link it there.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
need_packages "the browser tests (/usr/bin/chromium)" chromium fonts-liberation
/usr/bin/chromium --version
