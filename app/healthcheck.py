"""``python -m app.healthcheck worker [--max-age 60]``: the worker's liveness probe.

Owns: deciding liveness from the heartbeat file the worker's main process touches
(``app.celery_app.HeartbeatFile``). Exit 0 when the file was touched within ``--max-age``
seconds, 1 (with the reason on stderr) otherwise. It deliberately does not contact the broker:
a broker outage is not fixed by restarting workers, and probing it from every pod adds load
exactly when the broker is struggling.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from app.settings import AppSettings, SettingsError


def worker_heartbeat_age(path: Path, *, now: float | None = None) -> float:
    """Seconds since the heartbeat file was touched; raises FileNotFoundError if absent."""
    return (time.time() if now is None else now) - path.stat().st_mtime


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.healthcheck",
        description="Liveness checks for the containers of this application.",
    )
    subcommands = parser.add_subparsers(dest="component", required=True)
    worker = subcommands.add_parser(
        "worker",
        help="exit 0 while the Celery worker's heartbeat file is fresh",
        description="Exit 0 while CELERY_HEARTBEAT_FILE was touched within --max-age seconds.",
    )
    worker.add_argument(
        "--max-age",
        type=float,
        default=60.0,
        help="seconds the heartbeat file may be old (default: 60; the worker touches it every 10)",
    )
    arguments = parser.parse_args(argv)
    if not arguments.max_age > 0:
        parser.error(f"--max-age must be a number of seconds > 0, got {arguments.max_age}")
    try:
        settings = AppSettings.from_environ(os.environ if environ is None else environ)
    except SettingsError as error:
        print(f"invalid configuration: {error}", file=sys.stderr)
        return 2
    path = Path(settings.heartbeat_file)
    try:
        age = worker_heartbeat_age(path)
    except FileNotFoundError:
        print(
            f"unhealthy: heartbeat file {path} does not exist (worker not started?)",
            file=sys.stderr,
        )
        return 1
    if age > arguments.max_age:
        print(
            f"unhealthy: heartbeat file {path} is {age:.0f} s old "
            f"(limit {arguments.max_age:.0f} s)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
