"""The scripts shipped in the pghoard image: the backup check and the restore's config."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"image_{name}", REPO / "pghoard" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = load("check_backup")
restore = load("restore_backup")

NOW = dt.datetime(2030, 1, 2, 12, 0, tzinfo=dt.UTC)
MONOTONIC = 100_000.0


def status(*, backup_age_hours=1.0, wal_age_seconds=30.0, streaming=True, backups=True) -> dict:
    start = (NOW - dt.timedelta(hours=backup_age_hours)).isoformat()
    return {
        "startup_time": (NOW - dt.timedelta(days=3)).replace(tzinfo=None).isoformat(),
        "backup_sites": {
            "site": {
                "basebackups": [
                    {
                        "name": "site/basebackup/old",
                        "metadata": {"start-time": "2029-12-30T00:00:00Z"},
                    },
                    {"name": "site/basebackup/new", "metadata": {"start-time": start}},
                ]
                if backups
                else []
            }
        },
        "transfer_agent_state": {
            "site": {
                "upload": {
                    "xlog": {
                        "last_success": MONOTONIC - wal_age_seconds
                        if wal_age_seconds is not None
                        else None,
                    }
                }
            }
        },
        "pg_receivexlogs": {"site": {"running": streaming, "latest_activity": NOW.isoformat()}},
    }


def problems(state: dict, alert_files=()) -> list[str]:
    return check.problems(
        state,
        site="site",
        alert_files=list(alert_files),
        max_basebackup_age=dt.timedelta(hours=26),
        max_wal_age=dt.timedelta(minutes=60),
        now_wall=NOW,
        now_monotonic=MONOTONIC,
    )


def test_current_backups_are_healthy():
    assert problems(status()) == []


def test_a_stale_base_backup_is_reported():
    (problem,) = problems(status(backup_age_hours=30))
    assert "newest base backup" in problem and "30.0 h" in problem


def test_a_site_without_any_base_backup_is_reported():
    assert any("no base backup" in p for p in problems(status(backups=False)))


def test_wal_that_stopped_arriving_is_reported():
    (problem,) = problems(status(wal_age_seconds=2 * 3600))
    assert "last WAL segment" in problem


def test_a_stopped_wal_streamer_is_reported():
    (problem,) = problems(status(streaming=False))
    assert "pg_receivewal" in problem


def test_no_wal_since_a_long_running_start_is_reported():
    assert any("since pghoard started" in p for p in problems(status(wal_age_seconds=None)))


def test_every_alert_file_is_reported():
    found = problems(status(), alert_files=["upload_retries_warning", "authentication_error"])
    assert len(found) == 2 and all("alert file" in p for p in found)


def test_alert_files_are_found_on_disk(tmp_path):
    (tmp_path / "configuration_error").write_text("alert")
    (tmp_path / "unrelated").write_text("x")
    assert check.present_alert_files(tmp_path) == ["configuration_error"]


def test_check_fails_when_the_api_does_not_answer(tmp_path, capsys):
    config = tmp_path / "pghoard.json"
    config.write_text(json.dumps({"http_port": 1, "backup_sites": {"site": {}}}))
    assert check.main(["--config", str(config), "--liveness"]) == 1
    assert "does not answer" in capsys.readouterr().out


def test_restore_config_adds_the_private_key_and_never_touches_the_live_daemon(tmp_path):
    daemon = {
        "http_port": 16000,
        "backup_location": "/var/lib/pghoard/scratch",
        "backup_sites": {
            "site": {"encryption_key_id": "k1", "encryption_keys": {"k1": {"public": "PUB"}}}
        },
    }
    result = restore.restore_config(
        daemon,
        private_key_pem="-----BEGIN RSA PRIVATE KEY-----\nx\n",
        http_port=16001,
        work_dir=tmp_path,
        pg_data_directory=tmp_path / "data",
    )
    site = result["backup_sites"]["site"]
    assert site["encryption_keys"]["k1"]["private"].startswith("-----BEGIN RSA PRIVATE KEY")
    assert site["active"] is False
    assert result["http_port"] == 16001
    assert result["backup_location"].startswith(str(tmp_path))
    assert "private" not in daemon["backup_sites"]["site"]["encryption_keys"]["k1"]


def test_restore_refuses_a_key_that_is_not_private(tmp_path):
    with pytest.raises(restore.RestoreFailed, match="private key"):
        restore.restore_config(
            {"backup_sites": {"s": {}}},
            private_key_pem="PUB",
            http_port=1,
            work_dir=tmp_path,
            pg_data_directory=tmp_path,
        )


def test_restore_refuses_a_non_empty_target(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "PG_VERSION").write_text("17")
    with pytest.raises(restore.RestoreFailed, match="not empty"):
        restore.main(["--config", "x", "--private-key", "y", "--target-dir", str(target)])


def test_wal_age_is_read_from_pghoard_2_1s_per_agent_states_too():
    """pghoard 2.1 (the drills') lists one state per transfer agent instead of a shared one."""
    legacy = status(wal_age_seconds=None)
    del legacy["transfer_agent_state"]
    legacy["transfer_agents"] = [
        {"site": {"upload": {"xlog": {"last_success": MONOTONIC - 900}}}},
        {"site": {"upload": {"xlog": {"last_success": MONOTONIC - 40}}}},
        {"site": {"upload": {"xlog": {"last_success": None}}}},
    ]
    age = check.seconds_since_wal_upload(legacy, "site", now_monotonic=MONOTONIC, now_wall=NOW)
    assert age == 40
    legacy["transfer_agents"] = [{"site": {"upload": {"xlog": {"last_success": None}}}}]
    assert check.seconds_since_wal_upload(
        legacy, "site", now_monotonic=MONOTONIC, now_wall=NOW) is None
