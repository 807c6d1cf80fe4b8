#!/usr/bin/env bash
# checkov, the third-party IaC scanner that tests/stacks/test_scan.py runs over every stack's
# manifests, in its own virtualenv (.tools/checkov) from hash-pinned requirements, so its large
# dependency tree never touches the program's .venv. Reinstalls only when the pins change.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.tools/checkov
requirements=scripts/checkov-requirements.txt
stamp="$venv/.requirements-$(sha256sum "$requirements" | cut -c1-16)"
if [ -f "$stamp" ] && "$venv/bin/checkov" --version >/dev/null 2>&1; then
    exit 0
fi
echo "creating $venv (checkov, hash-pinned)"
rm -rf "$venv"
python3 -m venv "$venv"
.tools/uv/bin/uv pip install --quiet --python "$venv/bin/python" --require-hashes -r "$requirements"
touch "$stamp"
"$venv/bin/checkov" --version
