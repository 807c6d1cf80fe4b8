#!/usr/bin/env bash
# Everything the test suite needs beyond .venv: the local services it talks to and the tools the
# browser test and the drills run. Idempotent; each step says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in scripts/prereq.d/*.sh; do
    [ -e "$step" ] || continue
    bash "$step"
done
