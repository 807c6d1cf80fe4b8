#!/usr/bin/env bash
# pghoard for the backup/restore drill (tests/drills/test_backup_restore.py, marker `drill`).
#
# PyPI's newest pghoard is 2.1.0 (newer releases are only tagged upstream; the deployed image in
# pghoard/Dockerfile installs 2.7.0 from its tag). 2.1.0 supports Python 3.11 but not 3.12, and
# it must run as the `postgres` user next to a throwaway PostgreSQL, which cannot read a venv
# built on a Python under /root: so it gets its own venv from Debian's /usr/bin/python3.11.
# Every package is pinned exactly and installed with --no-deps, so the set never drifts;
# psycopg2-binary stands in for psycopg2 (no compiler or libpq headers needed on CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.tools/pghoard-venv
stamp="$venv/.requirements-v1"
if [ -f "$stamp" ] && "$venv/bin/pghoard" --version >/dev/null 2>&1; then
    exit 0
fi
if ! /usr/bin/python3.11 -c 'import ensurepip' >/dev/null 2>&1; then
    echo "installing Debian's python3.11-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3.11-venv >/dev/null
fi
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    echo "installing Debian's postgresql-15 binaries"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
echo "creating $venv (pghoard 2.1.0)"
rm -rf "$venv"
mkdir -p .tools
/usr/bin/python3.11 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    "pghoard==2.1.0" \
    "psycopg2-binary==2.9.13" \
    "cryptography==50.0.2" \
    "cffi==2.1.1" \
    "pycparser==3.12" \
    "python-dateutil==4.0.0" \
    "tzdata==2026.6" \
    "requests==2.34.2" \
    "certifi==2026.10.18" \
    "charset-normalizer==3.5.2" \
    "idna==3.20" \
    "urllib3==2.8.0" \
    "python-snappy==0.7.3" \
    "cramjam==2.14.0" \
    "zstandard==0.25.0"
"$venv/bin/pghoard" --version
# The drill runs pghoard as `postgres`: the tree must be readable and executable by that user.
chmod -R a+rX "$venv"
touch "$stamp"
