#!/usr/bin/env python3
"""Fail loudly when backups stop: the pghoard pod's readiness and liveness probes run this.

    check_backup.py --config /etc/pghoard/pghoard.json \\
        --max-basebackup-age-hours 26 --max-wal-age-minutes 60     # readiness
    check_backup.py --config /etc/pghoard/pghoard.json --liveness # liveness

Readiness fails (the pod shows 0/1 READY, which every cluster dashboard and alert on unready
pods sees) when any of these holds:
  * pghoard wrote an alert file (authentication_error, configuration_error,
    upload_retries_warning, version_mismatch_error, version_unsupported_error); pghoard never
    deletes them, so a human looks, fixes the cause and removes the file;
  * the newest base backup is older than --max-basebackup-age-hours, or there is none;
  * no WAL segment was uploaded for --max-wal-age-minutes (the stream is down). A database that
    is idle for longer than that writes no WAL either, so choose the limit above the longest
    quiet period you expect: a false alarm is visible, a silent gap is not;
  * the WAL streamer (pg_receivewal) is not running.
Liveness fails only when pghoard's HTTP API does not answer: restarting cannot fix a stale
backup, and restarting in the middle of a base backup would only make it staler.

Reads pghoard's own ``GET /status`` (the daemon's state file). Only the standard library, so
it runs with the Python pghoard runs on. Exit 0 healthy, 1 unhealthy (one line per problem).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ALERT_FILES = (
    "authentication_error",
    "configuration_error",
    "upload_retries_warning",
    "version_mismatch_error",
    "version_unsupported_error",
)


def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def newest_basebackup_time(status: dict[str, Any], site: str) -> dt.datetime | None:
    """Start time of the newest base backup pghoard knows about for ``site``."""
    backups = ((status.get("backup_sites") or {}).get(site) or {}).get("basebackups") or []
    times = [
        _parse_time(backup["metadata"]["start-time"])
        for backup in backups
        if (backup.get("metadata") or {}).get("start-time")
    ]
    return max(times) if times else None


def seconds_since_wal_upload(
    status: dict[str, Any], site: str, *, now_monotonic: float, now_wall: dt.datetime
) -> float | None:
    """Age of the last successful WAL upload, or None if there was none since pghoard started.

    pghoard records ``last_success`` as ``time.monotonic()`` of its own process; the probe runs
    in the same container, on the same kernel clock, so the difference is meaningful.
    """
    # pghoard 2.7 keeps one shared "transfer_agent_state"; 2.1 (the drills') lists one state per
    # transfer agent thread under "transfer_agents": the newest success of any of them counts.
    shared = status.get("transfer_agent_state")
    agents = [shared] if isinstance(shared, dict) else list(status.get("transfer_agents") or [])
    ages = []
    for agent in agents:
        upload = ((agent or {}).get(site) or {}).get("upload") or {}
        last = (upload.get("xlog") or {}).get("last_success")
        if last is None:
            continue
        if isinstance(last, int | float):
            ages.append(max(0.0, now_monotonic - float(last)))
        else:
            ages.append(max(0.0, (now_wall - _parse_time(str(last))).total_seconds()))
    return min(ages) if ages else None


def wal_streamer_running(status: dict[str, Any], site: str) -> bool | None:
    """Whether pg_receivewal runs for ``site`` (None when pghoard reports no streamer state)."""
    streamers = status.get("pg_receivexlogs")
    if not isinstance(streamers, dict):
        return None
    return bool((streamers.get(site) or {}).get("running"))


def problems(
    status: dict[str, Any],
    *,
    site: str,
    alert_files: list[str],
    max_basebackup_age: dt.timedelta,
    max_wal_age: dt.timedelta,
    now_wall: dt.datetime,
    now_monotonic: float,
) -> list[str]:
    """Everything wrong with the backups, as human-readable lines (empty: healthy). Pure."""
    found = [
        f"pghoard alert file {name!r} exists: fix the cause, then delete it"
        for name in sorted(alert_files)
    ]
    newest = newest_basebackup_time(status, site)
    if newest is None:
        found.append(f"site {site!r} has no base backup yet")
    elif now_wall - newest > max_basebackup_age:
        age_hours = (now_wall - newest).total_seconds() / 3600
        found.append(
            f"newest base backup of {site!r} started {age_hours:.1f} h ago "
            f"(limit {max_basebackup_age.total_seconds() / 3600:g} h)"
        )
    wal_age = seconds_since_wal_upload(status, site, now_monotonic=now_monotonic, now_wall=now_wall)
    startup = status.get("startup_time")
    running_for = (
        (now_wall - _parse_time(startup)).total_seconds() if isinstance(startup, str) else None
    )
    if wal_age is None:
        # Just started: give the stream the same allowance before calling it dead.
        if running_for is None or running_for > max_wal_age.total_seconds():
            found.append(
                f"no WAL segment of {site!r} uploaded since pghoard started "
                f"(limit {max_wal_age.total_seconds() / 60:g} min)"
            )
    elif wal_age > max_wal_age.total_seconds():
        found.append(
            f"last WAL segment of {site!r} uploaded {wal_age / 60:.1f} min ago "
            f"(limit {max_wal_age.total_seconds() / 60:g} min)"
        )
    if wal_streamer_running(status, site) is False:
        found.append(f"the WAL streamer (pg_receivewal) of {site!r} is not running")
    return found


def present_alert_files(directory: Path) -> list[str]:
    return [name for name in ALERT_FILES if (directory / name).exists()]


def fetch_status(port: int, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=timeout) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that pghoard's backups are current.")
    parser.add_argument("--config", required=True, type=Path, help="pghoard.json")
    parser.add_argument("--liveness", action="store_true", help="only check the API answers")
    parser.add_argument("--max-basebackup-age-hours", type=float, default=26.0)
    parser.add_argument("--max-wal-age-minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.max_basebackup_age_hours <= 0 or args.max_wal_age_minutes <= 0:
        parser.error("--max-basebackup-age-hours and --max-wal-age-minutes must be positive")

    config = json.loads(args.config.read_text())
    port = int(config.get("http_port", 16000))
    try:
        status = fetch_status(port)
    except (OSError, urllib.error.URLError, ValueError) as error:
        print(f"pghoard's API on 127.0.0.1:{port} does not answer: {error}")
        return 1
    if args.liveness:
        return 0
    sites = list(config.get("backup_sites") or {})
    if len(sites) != 1:
        print(f"{args.config}: expected exactly one backup site, found {sites}")
        return 1
    found = problems(
        status,
        site=sites[0],
        alert_files=present_alert_files(Path(config.get("alert_file_dir", "."))),
        max_basebackup_age=dt.timedelta(hours=args.max_basebackup_age_hours),
        max_wal_age=dt.timedelta(minutes=args.max_wal_age_minutes),
        now_wall=dt.datetime.now(dt.UTC),
        now_monotonic=time.monotonic(),
    )
    for line in found:
        print(line)
    if not found:
        print(f"backups of {sites[0]!r} are current")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
