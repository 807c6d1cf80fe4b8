"""`python -m drills.postgres_backup > report.json` gives valid JSON: the report alone on
stdout, progress on stderr, also when the drill fails or cannot run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drills import postgres_backup

REPORT_FIELDS = {"ok", "rows_before_backup", "rows_after_backup", "rows_restored", "rows_match",
                 "basebackup_seconds", "restore_download_seconds", "restore_replay_seconds",
                 "recovery_seconds", "check_healthy_output", "check_stale_exit_code",
                 "check_stale_output", "replication_tls", "plaintext_refused",
                 "untrusted_ca_refused", "pghoard_version"}


def _result(**changes) -> postgres_backup.DrillResult:
    values = dict(rows_before_backup=10, rows_after_backup=5, rows_restored=15, rows_match=True,
                  basebackup_seconds=1.0, restore_download_seconds=0.5,
                  restore_replay_seconds=0.7, recovery_seconds=2.0,
                  check_healthy_output="backups are current", check_stale_exit_code=1,
                  check_stale_output="newest base backup is too old",
                  replication_tls="TLSv1.3 TLS_AES_256_GCM_SHA384",
                  plaintext_refused="pg_hba.conf rejects connection ... no encryption",
                  untrusted_ca_refused="SSL error: certificate verify failed")
    values.update(changes)
    return postgres_backup.DrillResult(**values)


@pytest.fixture
def drill_can_run(monkeypatch):
    monkeypatch.setattr(postgres_backup, "prerequisites_missing", lambda: None)


def _fake_drill(result: postgres_backup.DrillResult):
    def run_drill(rows_before: int, rows_after: int, log=postgres_backup.progress):
        log(f"PostgreSQL 15 on 127.0.0.1:5999, {rows_before} rows written")
        log("restored in 2.00s")
        return result
    return run_drill


def test_the_report_is_the_only_output_on_stdout(monkeypatch, capsys, drill_can_run):
    monkeypatch.setattr(postgres_backup, "run_drill", _fake_drill(_result()))
    assert postgres_backup.main([]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert set(report) == REPORT_FIELDS and report["ok"] is True
    assert "rows written" in err and "restored in" in err


def test_a_drill_that_lost_rows_reports_it_and_exits_1(monkeypatch, capsys, drill_can_run):
    monkeypatch.setattr(postgres_backup, "run_drill",
                        _fake_drill(_result(rows_restored=14, rows_match=False)))
    assert postgres_backup.main([]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_a_drill_that_crashed_still_writes_a_json_report(monkeypatch, capsys, drill_can_run):
    def crash(**_kwargs):
        raise RuntimeError("pg_basebackup failed (1)")

    monkeypatch.setattr(postgres_backup, "run_drill", crash)
    assert postgres_backup.main([]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": False, "error": "RuntimeError: pg_basebackup failed (1)"}
    assert "Traceback" in err


def test_a_machine_that_cannot_run_the_drill_gets_a_json_report_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(postgres_backup, "prerequisites_missing", lambda: "no postgres user")
    assert postgres_backup.main([]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": False, "error": "no postgres user"}
    assert "cannot run" in err


@pytest.mark.drill
@pytest.mark.timeout(300)
def test_the_real_drill_writes_parseable_json_on_stdout_and_progress_on_stderr():
    missing = postgres_backup.prerequisites_missing()
    if missing:
        pytest.fail(f"backup drill cannot run: {missing}")
    completed = subprocess.run(
        [sys.executable, "-m", "drills.postgres_backup", "--rows-before", "200",
         "--rows-after", "100"],
        cwd=postgres_backup.REPO, capture_output=True, text=True, timeout=280)
    report = json.loads(completed.stdout)
    assert completed.returncode == 0, completed.stderr
    assert (report["ok"], report["rows_restored"]) == (True, 300)
    assert "rows written" in completed.stderr


@pytest.mark.parametrize(("value", "message"), [
    ("0", "0 is out of range 1..1000000"), ("many", "'many' is not a whole number")])
def test_a_bad_row_count_is_named_before_anything_starts(value, message, capsys, monkeypatch):
    monkeypatch.setattr(postgres_backup, "run_drill", lambda **_: pytest.fail("drill started"))
    with pytest.raises(SystemExit) as caught:
        postgres_backup.main(["--rows-before", value])
    assert caught.value.code == 2
    assert f"argument --rows-before: {message}" in capsys.readouterr().err


def test_a_drill_whose_wal_stream_was_not_encrypted_exits_1(monkeypatch, capsys, drill_can_run):
    monkeypatch.setattr(postgres_backup, "run_drill", _fake_drill(_result(replication_tls="")))
    assert postgres_backup.main([]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
