#!/usr/bin/env bash
# pghoard for the backup/restore drill (tests/drills/test_backup_restore.py, marker `drill`).
#
# PyPI's newest pghoard is 2.1.0 (newer releases are only tagged upstream; the deployed image in
# pghoard/Dockerfile installs 2.7.0 from its tag). 2.1.0 supports Python 3.11 but not 3.12, and
# it must run as the `postgres` user next to a throwaway PostgreSQL, which cannot read a venv
# built on a Python under /root: so it gets its own venv from a Python 3.11 that user can run
# (Debian 12's /usr/bin/python3.11; another one outside /root works too). The drill runs
# PostgreSQL 15 from /usr/lib/postgresql/15/bin (Debian's postgresql-15; the PostgreSQL apt
# repository installs the same path on Ubuntu).
# Every package is pinned exactly and installed with --no-deps, so the set never drifts;
# psycopg2-binary stands in for psycopg2 (no compiler or libpq headers needed on CI).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
cd "$(dirname "$0")/../.."
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    need_packages "the backup drill (PostgreSQL 15 in /usr/lib/postgresql/15/bin)" postgresql-15
fi
venv=.tools/pghoard-venv
stamp="$venv/.requirements-v1"
if [ -f "$stamp" ] && "$venv/bin/pghoard" --version >/dev/null 2>&1; then
    exit 0
fi
# A Python 3.11 with venv that the postgres user can execute.
usable() {
    [ -x "$1" ] && "$1" -c 'import ensurepip, sys; assert sys.version_info[:2] == (3, 11)' \
        >/dev/null 2>&1 && runuser -u postgres -- "$1" -c '' >/dev/null 2>&1
}
python=""
for candidate in /usr/bin/python3.11 /usr/local/bin/python3.11; do
    if usable "$candidate"; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
    need_packages "the backup drill (pghoard 2.1.0 runs on Python 3.11 as the postgres user)" \
        python3.11 python3.11-venv
    python=/usr/bin/python3.11
    usable "$python" || { echo "error: $python cannot be run by the postgres user" >&2; exit 1; }
fi
echo "creating $venv (pghoard 2.1.0)"
rm -rf "$venv"
mkdir -p .tools
"$python" -m venv "$venv"
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
