"""The worker liveness probe reads the heartbeat file's age."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.healthcheck import main


def test_fresh_heartbeat_is_healthy(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    assert main(["worker"], {"CELERY_HEARTBEAT_FILE": str(heartbeat)}) == 0


def test_stale_heartbeat_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    old = time.time() - 120
    os.utime(heartbeat, (old, old))
    assert main(["worker", "--max-age", "60"], {"CELERY_HEARTBEAT_FILE": str(heartbeat)}) == 1
    assert "s old (limit 60 s)" in capsys.readouterr().err
    assert main(["worker", "--max-age", "300"], {"CELERY_HEARTBEAT_FILE": str(heartbeat)}) == 0


def test_missing_heartbeat_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent"
    assert main(["worker"], {"CELERY_HEARTBEAT_FILE": str(missing)}) == 1
    assert "does not exist" in capsys.readouterr().err


def test_bad_max_age_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--max-age", "0"], {"CELERY_HEARTBEAT_FILE": str(tmp_path / "h")})
    assert exit_info.value.code == 2
