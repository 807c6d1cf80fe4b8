#!/usr/bin/env python3
"""Backup freshness as Prometheus metrics: a tiny exporter beside pghoard.

    backup_metrics.py --config /etc/pghoard/pghoard.json --port 9188     # serve /metrics
    backup_metrics.py --config /etc/pghoard/pghoard.json --once          # print them once

The readiness check (``check_backup.py``) turns the pod NotReady when backups go stale; that is
visible, but it is not a number anyone can alert on with a threshold, graph, or ask "how old
is the newest base backup?". This exporter reads the same ``GET /status`` of pghoard's API with
the same parsing functions (imported from ``check_backup``), and serves, per site:

  backup_daemon_up                                  1 if pghoard's API answered this scrape
  backup_daemon_start_timestamp_seconds             when pghoard started
  backup_newest_basebackup_start_timestamp_seconds  start of the newest base backup
  backup_basebackups                                base backups pghoard keeps
  backup_last_wal_upload_timestamp_seconds          last successful WAL upload (wall clock)
  backup_wal_streamer_running                       1 while pg_receivewal runs
  backup_alert_file_present{file}                   1 while pghoard's alert file exists

Timestamps, not ages: Prometheus computes ``time() - x``, so an age keeps growing while pghoard
is down. For that the exporter remembers the last values it saw and keeps serving them when
pghoard stops answering (``backup_daemon_up`` 0): the backups it saw still exist, and the alert
on their age fires on time. pghoard reports its last upload on its own monotonic clock; the
exporter converts it with the same kernel clock, so it must run on the same node (a sidecar).

Only the standard library, so it runs on the Python pghoard runs on. Exit codes: 0, or 2 on a
bad command line (with the reason).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import check_backup

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HELP = {
    "backup_daemon_up": "1 if pghoard's API answered the last scrape",
    "backup_daemon_start_timestamp_seconds": "When pghoard started (Unix seconds)",
    "backup_newest_basebackup_start_timestamp_seconds": "Start of the newest base backup",
    "backup_basebackups": "Base backups pghoard keeps",
    "backup_last_wal_upload_timestamp_seconds": "Last successful WAL segment upload",
    "backup_wal_streamer_running": "1 while pg_receivewal runs",
    "backup_alert_file_present": "1 while pghoard's alert file exists (fix, then delete it)",
}


@dataclass
class Remembered:
    """What the exporter saw last, served again while pghoard is down."""

    daemon_start: float | None = None
    newest_basebackup: float | None = None
    basebackups: int | None = None
    last_wal_upload: float | None = None
    streamer_running: bool | None = None
    alert_files: dict[str, bool] = field(default_factory=dict)


def observe(
    remembered: Remembered,
    status: dict[str, Any] | None,
    *,
    site: str,
    alert_files: list[str] | None,
    now_wall: dt.datetime,
    now_monotonic: float,
) -> bool:
    """Fold one look at pghoard (``status`` None: it did not answer) into ``remembered``.
    Returns whether pghoard answered. Pure apart from updating ``remembered``."""
    if alert_files is not None:
        remembered.alert_files = {
            name: name in alert_files for name in check_backup.ALERT_FILES
        }
    if status is None:
        return False
    startup = status.get("startup_time")
    if isinstance(startup, str):
        remembered.daemon_start = check_backup._parse_time(startup).timestamp()
    newest = check_backup.newest_basebackup_time(status, site)
    if newest is not None:
        remembered.newest_basebackup = max(remembered.newest_basebackup or 0.0, newest.timestamp())
    backups = ((status.get("backup_sites") or {}).get(site) or {}).get("basebackups")
    if isinstance(backups, list):
        remembered.basebackups = len(backups)
    age = check_backup.seconds_since_wal_upload(
        status, site, now_monotonic=now_monotonic, now_wall=now_wall
    )
    if age is not None:
        uploaded = now_wall.timestamp() - age
        remembered.last_wal_upload = max(remembered.last_wal_upload or 0.0, uploaded)
    remembered.streamer_running = check_backup.wal_streamer_running(status, site)
    return True


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(remembered: Remembered, *, site: str, up: bool) -> str:
    """The exposition text (Prometheus text format 0.0.4)."""
    series: list[tuple[str, dict[str, str], float]] = [("backup_daemon_up", {}, 1.0 if up else 0.0)]
    values = (
        ("backup_daemon_start_timestamp_seconds", remembered.daemon_start),
        ("backup_newest_basebackup_start_timestamp_seconds", remembered.newest_basebackup),
        ("backup_basebackups", remembered.basebackups),
        ("backup_last_wal_upload_timestamp_seconds", remembered.last_wal_upload),
    )
    series += [(name, {}, float(value)) for name, value in values if value is not None]
    if up and remembered.streamer_running is not None:
        series.append(("backup_wal_streamer_running", {}, float(remembered.streamer_running)))
    series += [
        ("backup_alert_file_present", {"file": name}, float(present))
        for name, present in sorted(remembered.alert_files.items())
    ]
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in series:
        if name not in seen:
            seen.add(name)
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        pairs = ",".join(f'{k}="{_label(v)}"' for k, v in {"site": site, **labels}.items())
        lines.append(f"{name}{{{pairs}}} {value!r}")
    return "\n".join(lines) + "\n"


@dataclass
class Exporter:
    """Everything one scrape needs; ``fetch`` and the clocks are injectable for tests."""

    site: str
    pghoard_port: int
    alert_file_dir: Path | None
    fetch: Callable[[int], dict[str, Any]] = check_backup.fetch_status
    remembered: Remembered = field(default_factory=Remembered)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scrape(self) -> str:
        try:
            status = self.fetch(self.pghoard_port)
        except (OSError, urllib.error.URLError, ValueError):
            status = None
        alert_files = None
        if self.alert_file_dir is not None and self.alert_file_dir.is_dir():
            alert_files = check_backup.present_alert_files(self.alert_file_dir)
        with self.lock:
            up = observe(
                self.remembered, status, site=self.site, alert_files=alert_files,
                now_wall=dt.datetime.now(dt.UTC), now_monotonic=time.monotonic(),
            )
            return render(self.remembered, site=self.site, up=up)


def exporter_from_config(path: Path) -> Exporter:
    """Read pghoard.json: the one backup site, pghoard's API port, its alert file directory."""
    config = json.loads(path.read_text())
    sites = list(config.get("backup_sites") or {})
    if len(sites) != 1:
        raise ValueError(f"{path}: expected exactly one backup site, found {sites}")
    alert_dir = config.get("alert_file_dir")
    return Exporter(
        site=sites[0],
        pghoard_port=int(config.get("http_port", 16000)),
        alert_file_dir=Path(alert_dir) if alert_dir else None,
    )


def serve(exporter: Exporter, address: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering ``/metrics`` (and ``/healthz`` for probes); not started."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/metrics":
                body, status, kind = exporter.scrape().encode(), 200, CONTENT_TYPE
            elif self.path == "/healthz":
                body, status, kind = b"ok\n", 200, "text/plain"
            else:
                body, status, kind = b"not found: try /metrics\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # scrapes every 30 s would flood the log
            return

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535), e.g. 9188")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve pghoard's backup freshness as metrics.")
    parser.add_argument("--config", required=True, type=Path, help="pghoard.json")
    parser.add_argument("--port", type=_port, default=9188, help="listen port (default 9188)")
    parser.add_argument("--address", default="0.0.0.0", help="listen address")  # noqa: S104
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    args = parser.parse_args(argv)
    try:
        exporter = exporter_from_config(args.config)
    except (OSError, ValueError) as error:
        parser.error(f"--config: {error}")
    if args.once:
        sys.stdout.write(exporter.scrape())
        return 0
    server = serve(exporter, args.address, args.port)
    print(f"backup metrics of site {exporter.site!r} on {args.address}:{args.port}/metrics",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
