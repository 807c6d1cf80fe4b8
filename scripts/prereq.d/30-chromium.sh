#!/usr/bin/env bash
# Headless Chromium for the web app's browser test (tests/app, marker `browser`). Debian's own
# package, driven by the pinned python `playwright` through executable_path: Playwright's own
# browser download is never used (no network beyond the package registries).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
echo "installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
/usr/bin/chromium --version
