"""The test prerequisites name what is missing and how to get it, instead of failing halfway
(scripts/prereq.d)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PREREQ = REPOSITORY / "scripts" / "prereq.d"
BASH = shutil.which("bash") or "/bin/bash"


def _need(packages: str, *, user: str | None = None, path: str | None = None):
    script = f'source {PREREQ / "lib.bash"}; need_packages "the test step" {packages}'
    command = [BASH, "-c", script]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    environment = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)


def test_installed_packages_need_nothing():
    completed = _need("bash coreutils")
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_missing_package_without_root_names_the_command_to_run_and_installs_nothing():
    completed = _need("ha-celery-no-such-package bash", user="nobody")
    assert completed.returncode == 1
    assert "the test step needs ha-celery-no-such-package; installing them needs root" in (
        completed.stderr)
    assert "sudo apt-get install -y --no-install-recommends ha-celery-no-such-package" in (
        completed.stderr)


def test_a_system_without_apt_get_is_told_which_packages_to_install():
    completed = _need("chromium", path="/nonexistent")
    assert completed.returncode == 1
    assert "needs the Debian packages chromium" in completed.stderr
    assert "has no apt-get" in completed.stderr


def test_a_postgresql_that_asks_for_a_password_is_named_with_the_fix():
    completed = subprocess.run(
        [BASH, str(PREREQ / "10-services.sh")], capture_output=True, text=True, timeout=120,
        env={**os.environ,
             "HACELERY_DRILL_POSTGRES": "postgresql://ha_celery_no_such_role@127.0.0.1:5432/x"})
    assert completed.returncode == 1
    assert "cannot connect to PostgreSQL as postgresql://ha_celery_no_such_role@" in (
        completed.stderr)
    assert "HACELERY_DRILL_POSTGRES" in completed.stderr
