"""Backup/restore drill: what pghoard backs up from PostgreSQL restores, row for row.

Runs `drills/postgres_backup.py` (a throwaway PostgreSQL 15 and pghoard on this machine, with
the generated configuration the platform deploys) and prints the measured recovery time.
"""

from __future__ import annotations

import pytest

from drills import postgres_backup

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def drill_result() -> postgres_backup.DrillResult:
    missing = postgres_backup.prerequisites_missing()
    if missing:
        pytest.fail(f"backup drill cannot run: {missing}")
    result = postgres_backup.run_drill(rows_before=1000, rows_after=500)
    print(
        f"\nbackup/restore drill (pghoard {result.pghoard_version}, PostgreSQL 15): "
        f"base backup {result.basebackup_seconds:.2f}s, recovery {result.recovery_seconds:.2f}s "
        f"(download {result.restore_download_seconds:.2f}s, "
        f"WAL replay + promotion {result.restore_replay_seconds:.2f}s)"
    )
    return result


def test_every_row_is_restored_including_those_written_after_the_base_backup(drill_result):
    assert drill_result.rows_restored == (
        drill_result.rows_before_backup + drill_result.rows_after_backup
    )
    assert drill_result.rows_match


def test_backup_check_passes_on_a_fresh_backup_and_fails_on_a_stale_one(drill_result):
    assert "are current" in drill_result.check_healthy_output
    assert drill_result.check_stale_exit_code == 1
    assert "newest base backup" in drill_result.check_stale_output


def test_the_wal_stream_and_base_backups_travel_over_tls(drill_result):
    assert drill_result.replication_tls.startswith("TLSv1.3 ")


def test_a_plaintext_client_and_one_trusting_another_ca_are_refused(drill_result):
    assert "no encryption" in drill_result.plaintext_refused
    assert "certificate verify failed" in drill_result.untrusted_ca_refused
