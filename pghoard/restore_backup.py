#!/usr/bin/env python3
"""Restore the platform's PostgreSQL from pghoard backups into a new data directory.

Usage (inside the pghoard image, as the postgres user, e.g. in a restore pod that mounts the
backup config Secret, the restore-key Secret and an empty volume for the new data directory):

    restore_backup.py --config /etc/pghoard/pghoard.json \\
        --private-key /etc/pghoard-restore/private-key.pem \\
        --target-dir /var/lib/postgresql/data/pgdata \\
        [--recovery-target-time 2030-01-01T12:00:00+00:00]

What it does, in order:
  1. writes a restore-only pghoard config: the daemon's config plus the private key, the site
     marked inactive (it never takes or deletes backups), its own HTTP port and scratch paths,
     so it can run next to a live pghoard without touching it;
  2. downloads and decrypts the newest base backup (or the newest one older than the target
     time) into --target-dir with ``pghoard_restore get-basebackup``;
  3. starts that inactive pghoard, which serves WAL to PostgreSQL's restore_command;
  4. starts PostgreSQL on the new directory (socket only, no TCP) and waits until it has
     replayed WAL up to the end (or the target time) and promoted itself;
  5. stops PostgreSQL cleanly (unless --leave-running) and the restore pghoard, and prints the
     timings as JSON on the last line.

The new directory is a complete primary: point the StatefulSet's volume at it (or copy it there)
and start the pod. Only the standard library is used, so it runs with the pghoard venv's Python.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

PRIMARY_FLAG = "--restore-to-primary"
"""pghoard 2.7's spelling (2.1 and older call it --restore-to-master)."""


class RestoreFailed(RuntimeError):
    """A step failed; the message says which and what to look at."""


def restore_config(
    config: dict[str, Any],
    *,
    private_key_pem: str,
    http_port: int,
    work_dir: Path,
    pg_data_directory: Path,
) -> dict[str, Any]:
    """The daemon's config turned into a restore-only one. Pure: the input is not modified."""
    if "PRIVATE KEY-----" not in private_key_pem:
        raise RestoreFailed("--private-key: the file is not a PEM private key")
    sites = config.get("backup_sites") or {}
    if len(sites) != 1:
        raise RestoreFailed(f"--config: expected exactly one backup site, found {sorted(sites)}")
    result = copy.deepcopy(config)
    result["http_port"] = http_port
    result["http_address"] = "127.0.0.1"
    result["backup_location"] = str(work_dir / "scratch")
    result["alert_file_dir"] = str(work_dir)
    result["json_state_file_path"] = str(work_dir / "state.json")
    result["maintenance_mode_file"] = str(work_dir / "maintenance_mode")
    site = next(iter(result["backup_sites"].values()))
    # Inactive: serve WAL to the restore, never stream, back up or delete anything.
    site["active"] = False
    site["pg_data_directory"] = str(pg_data_directory)
    key_id = site.get("encryption_key_id")
    if key_id:
        site["encryption_keys"][key_id]["private"] = private_key_pem
    return result


def _site(config: dict[str, Any]) -> str:
    return next(iter(config["backup_sites"]))


def _run(command: list[str], *, env: dict[str, str], what: str) -> None:
    print(f"restore: {what}: {shlex.join(command)}", flush=True)
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise RestoreFailed(f"{what} failed with exit code {completed.returncode} (see above)")


def _wait_for_http(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RestoreFailed(f"the restore pghoard did not answer on 127.0.0.1:{port} in {timeout}s")


def _in_recovery(psql: str, socket_dir: Path, port: int, user: str, env: dict[str, str]) -> bool:
    completed = subprocess.run(
        [
            psql,
            "-h",
            str(socket_dir),
            "-p",
            str(port),
            "-U",
            user,
            "-d",
            "postgres",
            "-XAtc",
            "SELECT pg_is_in_recovery()",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return True  # not accepting connections yet: still replaying
    return completed.stdout.strip() != "f"


def _server_running(pg_bin: Path, data_dir: Path, env: dict[str, str]) -> bool:
    for _ in range(25):  # right after `pg_ctl start` the pid file may not exist yet
        status = subprocess.run(
            [str(pg_bin / "pg_ctl"), "-D", str(data_dir), "status"],
            env=env,
            capture_output=True,
            check=False,
        )
        if status.returncode == 0:
            return True
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="the daemon's pghoard.json")
    parser.add_argument("--private-key", required=True, type=Path, help="PEM private key file")
    parser.add_argument("--target-dir", required=True, type=Path, help="new, empty data dir")
    parser.add_argument("--work-dir", type=Path, help="scratch dir (default: beside target)")
    parser.add_argument("--recovery-target-time", help="ISO 8601 time to stop replay at (PITR)")
    parser.add_argument("--http-port", type=int, default=16001, help="restore pghoard's port")
    parser.add_argument("--port", type=int, default=5499, help="temporary PostgreSQL port")
    parser.add_argument("--user", default="postgres", help="superuser for the recovery check")
    parser.add_argument("--pg-bin-dir", type=Path, default=None, help="PostgreSQL binaries")
    parser.add_argument("--pghoard-bin-dir", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--primary-flag", default=PRIMARY_FLAG, help=argparse.SUPPRESS)
    parser.add_argument("--pghoard-command", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--after-download", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for WAL replay")
    parser.add_argument("--leave-running", action="store_true", help="keep PostgreSQL running")
    args = parser.parse_args(argv)

    started = time.monotonic()
    if args.target_dir.exists() and any(args.target_dir.iterdir()):
        raise RestoreFailed(f"--target-dir {args.target_dir} is not empty; give a new directory")
    work_dir = args.work_dir or args.target_dir.parent / (args.target_dir.name + ".restore")
    work_dir.mkdir(parents=True, exist_ok=True)
    pg_bin = args.pg_bin_dir or Path(
        subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    daemon_config = json.loads(args.config.read_text())
    config = restore_config(
        daemon_config,
        private_key_pem=args.private_key.read_text(),
        http_port=args.http_port,
        work_dir=work_dir,
        pg_data_directory=args.target_dir,
    )
    restore_config_path = work_dir / "pghoard-restore.json"
    restore_config_path.touch(mode=0o600)
    restore_config_path.write_text(json.dumps(config, indent=2))
    site = _site(config)
    env = {
        **os.environ,
        "HOME": str(work_dir),
        # restore_command calls pghoard_postgres_command by name.
        "PATH": f"{args.pghoard_bin_dir}:{pg_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }

    command = [
        str(args.pghoard_bin_dir / "pghoard_restore"),
        "get-basebackup",
        "--config",
        str(restore_config_path),
        "--site",
        site,
        "--target-dir",
        str(args.target_dir),
        args.primary_flag,
        # restore_command will point at this config's http_port (the restore pghoard).
        "--recovery-target-action",
        "promote",
    ]
    if args.recovery_target_time:
        command += ["--recovery-target-time", args.recovery_target_time]
    _run(command, env=env, what="download the base backup")
    downloaded = time.monotonic()
    if args.after_download:
        _run(
            [*shlex.split(args.after_download), str(args.target_dir)],
            env=env,
            what="after-download step",
        )
    os.chmod(args.target_dir, 0o700)

    pghoard_command = (
        shlex.split(args.pghoard_command)
        if args.pghoard_command
        else [str(args.pghoard_bin_dir / "pghoard")]
    )
    log = (work_dir / "pghoard.log").open("ab")
    pghoard = subprocess.Popen(
        [*pghoard_command, str(restore_config_path)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server_started = False
    try:
        _wait_for_http(args.http_port, 60)
        server_options = (
            f"-c port={args.port} -c listen_addresses='' -c unix_socket_directories='{work_dir}'"
        )
        _run(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(args.target_dir),
                "-l",
                str(work_dir / "postgresql.log"),
                "-o",
                server_options,
                "-W",
                "start",
            ],
            env=env,
            what="start PostgreSQL on the restored directory",
        )
        server_started = True
        deadline = time.monotonic() + args.timeout
        while _in_recovery(str(pg_bin / "psql"), work_dir, args.port, args.user, env):
            if time.monotonic() > deadline:
                raise RestoreFailed(
                    f"PostgreSQL still replaying WAL after {args.timeout}s; see "
                    f"{work_dir / 'postgresql.log'} and {work_dir / 'pghoard.log'}"
                )
            if pghoard.poll() is not None:
                raise RestoreFailed(f"the restore pghoard exited; see {work_dir / 'pghoard.log'}")
            if not _server_running(pg_bin, args.target_dir, env):
                raise RestoreFailed(
                    f"PostgreSQL stopped during recovery; see {work_dir / 'postgresql.log'}"
                )
            time.sleep(0.2)
        promoted = time.monotonic()
    finally:
        if server_started and not args.leave_running:
            subprocess.run(
                [str(pg_bin / "pg_ctl"), "-D", str(args.target_dir), "-m", "fast", "-w", "stop"],
                env=env,
                check=False,
            )
        if pghoard.poll() is None:
            os.killpg(pghoard.pid, signal.SIGTERM)
            try:
                pghoard.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(pghoard.pid, signal.SIGKILL)
                pghoard.wait()
        log.close()
    print(
        json.dumps(
            {
                "target_dir": str(args.target_dir),
                "download_seconds": round(downloaded - started, 3),
                "replay_seconds": round(promoted - downloaded, 3),
                "total_seconds": round(promoted - started, 3),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RestoreFailed as error:
        print(f"restore failed: {error}", file=sys.stderr)
        sys.exit(1)
