"""Backup/restore drill: a real PostgreSQL, a real pghoard, a real restore, on this machine.

Runs the configuration the platform deploys: `postgresql.conf`, `pg_hba.conf` and the init
script from `infra/postgres_config.py`, `pghoard.json` and the throttling pg_basebackup wrapper
from `infra/pghoard_config.py` (only the storage, paths and ports differ), the restore script
`pghoard/restore_backup.py` and the monitoring check `pghoard/check_backup.py` from the image.

TLS is on as deployed: the server's certificate is the stack's PostgreSQL spec
(``infra.certificates.postgres_spec``) issued by a local CA (``drills/certificates.py``), the
server accepts network connections over TLS only (``hostssl``), and every client (the app's rows,
pghoard's WAL stream and base backups, the restore check) uses ``sslmode=verify-full`` against
the cluster's DNS name (dialled on 127.0.0.1 through libpq's ``hostaddr``). The drill proves the
WAL stream is encrypted (``pg_stat_ssl`` of the walsender), that a plain-TCP client is refused
and that a client trusting another CA is refused.

Sequence: initdb -> start -> init script (roles, database, replication slot) -> rows written ->
pghoard takes a base backup and streams WAL -> more rows written -> WAL switch, wait for the
segment in storage -> the primary is destroyed -> restore into a new data directory (download,
WAL replay, promotion) -> the restored server is started and every row is compared.

Adaptations for the pghoard on this machine live HERE and nowhere in what is deployed: PyPI only
has pghoard 2.1.0 (2019), the image runs 2.7.0. 2.1.0 vs PostgreSQL 15 needs: the WAL page magic
numbers of 12-15 (it knows up to 11), an explicit pg_receivewal path (it looks for
pg_receivexlog), `--restore-to-master` (2.7: --restore-to-primary), and its PostgreSQL-11-style
recovery.conf translated into postgresql.auto.conf + recovery.signal after the download.
Also drill-only: a fast checkpoint (production keeps it spread) and listening on 127.0.0.1.

Every process started here is stopped in ``finally`` blocks, also on failure.

``python -m drills.postgres_backup [--rows-before N] [--rows-after N] > report.json``: the
report is the only thing on stdout (one JSON object, also on failure, then with an ``error``);
progress goes to stderr. Exit 0 when every row came back and the backup check behaved, 1 when
the drill failed, 2 when it cannot run on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from drills import certificates as local_certificates
from infra import certificates, pghoard_config, postgres_config

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PGHOARD_VENV = REPO / ".tools" / "pghoard-venv"
RESTORE_SCRIPT = REPO / "pghoard" / "restore_backup.py"
CHECK_SCRIPT = REPO / "pghoard" / "check_backup.py"
RUN_AS = "postgres"
PGHOARD_VERSION = "2.1.0"
NAMESPACE, SERVICE = "ha-celery", "postgres"
"""The drill's server answers to the cluster's own name for the database Service."""
SERVER_NAME = f"{SERVICE}.{NAMESPACE}.svc.{certificates.CLUSTER_DOMAIN}"

# pghoard 2.1.0 knows WAL page magic numbers up to PostgreSQL 11; these are 12-15's.
_LAUNCHER = """\
import sys
from pghoard import wal
for magic, version in {0xD101: 120000, 0xD106: 130000, 0xD10D: 140000, 0xD110: 150000}.items():
    wal.WAL_MAGIC[magic] = version
    wal.WAL_MAGIC_BY_VERSION[version] = magic
if __name__ == "__main__":  # pghoard's forkserver re-imports this file; patch above applies
    from pghoard.pghoard import main
    sys.exit(main())
"""

# pghoard 2.1.0 writes a PostgreSQL-11 recovery.conf; 12+ wants the settings in
# postgresql.auto.conf and a recovery.signal file; its WAL server writes into pg_xlog.
_FIXUP_210_RESTORE = """\
import pathlib, shutil, sys
data = pathlib.Path(sys.argv[1])
recovery = data / "recovery.conf"
kept = []
for line in recovery.read_text().splitlines():
    key = line.split("=", 1)[0].strip()
    if line.startswith("#") or key in ("standby_mode", "trigger_file"):
        continue
    kept.append(line)
with (data / "postgresql.auto.conf").open("a") as auto:
    auto.write("\\n".join(kept) + "\\n")
recovery.unlink()
(data / "recovery.signal").touch()
xlog = data / "pg_xlog"
(data / "pg_wal").mkdir(exist_ok=True)
if xlog.is_dir() and not xlog.is_symlink():
    for item in xlog.iterdir():
        shutil.move(str(item), str(data / "pg_wal" / item.name))
    xlog.rmdir()
# 2.1.0's WAL server writes fetched segments into pg_xlog: let them land in pg_wal.
if not xlog.exists():
    xlog.symlink_to("pg_wal")
"""


@dataclass(frozen=True)
class DrillResult:
    """What the drill measured. Times in seconds."""

    rows_before_backup: int
    rows_after_backup: int
    rows_restored: int
    rows_match: bool
    basebackup_seconds: float
    restore_download_seconds: float
    restore_replay_seconds: float
    recovery_seconds: float
    """Wall time of the whole scripted restore: download, WAL replay, promotion, clean stop."""
    check_healthy_output: str
    check_stale_exit_code: int
    check_stale_output: str
    replication_tls: str
    """The WAL stream's connection as pg_stat_ssl saw it, e.g. ``TLSv1.3 TLS_AES_256_GCM_SHA384``
    (empty: not encrypted)."""
    plaintext_refused: str
    """The server's answer to a client without TLS (empty: it was let in)."""
    untrusted_ca_refused: str
    """libpq's answer when the client trusts another CA (empty: it connected)."""
    pghoard_version: str = PGHOARD_VERSION


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(RUN_AS)
    return entry.pw_uid, entry.pw_gid


def prerequisites_missing() -> str | None:
    """Why the drill cannot run here (None: it can)."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 binaries not found in {PG_BIN}"
    if not (PGHOARD_VENV / "bin" / "pghoard").exists():
        return f"pghoard venv missing: run scripts/prereq.d/40-pghoard.sh (expects {PGHOARD_VENV})"
    try:
        _postgres_ids()
    except KeyError:
        return f"no {RUN_AS!r} user on this machine"
    if os.geteuid() != 0:
        return "the drill switches to the postgres user and must start as root"
    return None


class Processes:
    """Every process the drill starts, so all of them are stopped whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[subprocess.Popen[bytes]] = []
        self.data_dirs: list[Path] = []
        uid, gid = _postgres_ids()
        self.uid, self.gid = uid, gid
        self.env = {
            "PATH": f"{PG_BIN}:{PGHOARD_VENV / 'bin'}:/usr/bin:/bin",
            "HOME": str(workdir / "home"),
            "LANG": "C.UTF-8",
        }

    def _as_user(self) -> dict:
        """Process settings that run a command as the unprivileged user, in its own workdir."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "env": self.env,
                "cwd": self.workdir}

    def run(
        self, command: list[str], *, check: bool = True, **kwargs
    ) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            command,
            **self._as_user(),
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )
        if check and completed.returncode != 0:
            raise RuntimeError(
                f"{command[0]} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed

    def start(self, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            child = subprocess.Popen(
                command,
                **self._as_user(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append(child)
        return child

    def stop(self, child: subprocess.Popen[bytes]) -> None:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def start_postgres(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dirs.append(data_dir)
        options = (
            f"-c port={port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.workdir}"
        )
        self.run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop_postgres(self, data_dir: Path, mode: str = "fast") -> None:
        if not (data_dir / "postmaster.pid").exists():
            return
        self.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", mode, "-w", "-t", "30", "stop"],
            check=False,
        )
        pid_file = data_dir / "postmaster.pid"
        if pid_file.exists():  # pg_ctl could not stop it: do it by pid, it is ours
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child)
        for data_dir in reversed(self.data_dirs):
            self.stop_postgres(data_dir, mode="immediate")


@contextlib.contextmanager
def drill_workdir() -> Iterator[Path]:
    """A temp dir owned by postgres (the server refuses root), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="hacelery-pgdrill-"))
    try:
        for sub in ("home", "secrets", "bin", "storage", "pghoard", "alerts"):
            (path / sub).mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _chown_tree(path: Path) -> None:
    uid, gid = _postgres_ids()
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _generate_key_pair(workdir: Path) -> tuple[str, str]:
    """RSA key pair in the formats pulumi_tls produces (PKCS#1 private, SPKI public)."""
    private = workdir / "secrets" / "private-key.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(private), "3072"],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return private.read_text(), public


def _wait_for(condition, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _storage_files(storage: Path, site: str, kind: str) -> list[str]:
    folder = storage / site / kind
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".metadata"))


def _url(user: str, password: str, port: int, database: str, ca_file: Path) -> str:
    """A verify-full URL for the cluster's name, dialled on loopback."""
    return postgres_config.database_url(
        user=user, password=password, host=SERVER_NAME, port=port, database=database,
        ca_file=str(ca_file),
    ) + "&hostaddr=127.0.0.1"


def _refusal(url: str) -> str:
    """The error a connection attempt gets, or '' if it was let in."""
    try:
        with psycopg.connect(url, connect_timeout=10):
            return ""
    except psycopg.OperationalError as error:
        return " ".join(str(error).split())


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=10) as connection:
        query = "SELECT id, phase, payload FROM drill_rows ORDER BY id"
        return connection.execute(query).fetchall()


def _insert(url: str, first_id: int, count: int, phase: str) -> None:
    with psycopg.connect(url, connect_timeout=10) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO drill_rows (id, phase, payload) VALUES (%s, %s, %s)",
            [
                (i, phase, f"row {i} written {phase} " + "x" * 200)
                for i in range(first_id, first_id + count)
            ],
        )


def progress(message: str) -> None:
    """Progress for a person watching: stderr, so stdout stays the machine-readable report."""
    print(message, file=sys.stderr, flush=True)


def run_drill(rows_before: int = 1000, rows_after: int = 500, log=progress) -> DrillResult:
    """Run the whole drill and return its measurements; raises on any failure."""
    missing = prerequisites_missing()
    if missing:
        raise RuntimeError(missing)
    with drill_workdir() as workdir:
        processes = Processes(workdir)
        try:
            return _drill(workdir, processes, rows_before, rows_after, log)
        except BaseException:
            for name in ("postgres.log", "pghoard.log", "restored.log"):
                path = workdir / name
                if path.exists():
                    log(
                        f"--- {name} (tail) ---\n"
                        + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
                    )
            raise
        finally:
            processes.stop_all()


@dataclass(frozen=True)
class Primary:
    """A running PostgreSQL configured as deployed (TLS on), with the init script's roles."""

    settings: postgres_config.PostgresSettings
    data: Path
    app_url: str
    """verify-full against the cluster's DNS name, dialled on 127.0.0.1."""
    app_password: str
    backup_password: str
    public_key_pem: str
    ca_certificate: Path
    untrusted_ca: Path
    socket_dir: Path
    """``unix_socket_directories``: the drill's work directory."""


@dataclass(frozen=True)
class PgHoard:
    """A pghoard daemon configured by the generator; ``command`` starts it again."""

    config_path: Path
    storage: Path
    site: str
    command: list[str]
    python: str
    launcher: Path
    log: Path


def start_primary(workdir: Path, processes: Processes) -> Primary:
    """TLS material, initdb, the generated postgresql.conf and pg_hba.conf, start, the init
    script's roles."""
    authority = local_certificates.issue(
        [certificates.postgres_spec(namespace=NAMESPACE, service=SERVICE)], workdir / "tls"
    )
    server_certificate = authority["postgres"]
    settings = postgres_config.PostgresSettings(
        memory_limit_mib=512, storage_size_gib=8, port=free_port(), wal_keep_size_mib=256,
        tls=postgres_config.ServerTls(
            certificate_file=str(server_certificate.certificate),
            key_file=str(server_certificate.key),
            ca_file=str(authority.ca_certificate),
        ),
    )
    app_password = "DrillApp" + os.urandom(8).hex()
    backup_password = "DrillBackup" + os.urandom(8).hex()
    secrets = workdir / "secrets"
    _write(secrets / "app-password", app_password)
    _write(secrets / "backup-password", backup_password)
    _, public_pem = _generate_key_pair(workdir)

    data = workdir / "data"
    _chown_tree(workdir)
    processes.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "--username=postgres",
            "--data-checksums",
            "--encoding=UTF8",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
        ]
    )
    _write(data / "postgresql.conf", postgres_config.postgresql_conf(settings))
    _write(data / "pg_hba.conf", postgres_config.pg_hba_conf(settings))
    _chown_tree(workdir)
    processes.start_postgres(data, settings.port, workdir / "postgres.log")
    init = _write(
        workdir / "init.sh", postgres_config.init_script(settings, secrets_dir=str(secrets)), 0o755
    )
    _chown_tree(workdir)
    processes.env.update(POSTGRES_USER="postgres", PGHOST=str(workdir), PGPORT=str(settings.port))
    processes.run(["bash", str(init)])
    app_url = _url(settings.app_user, app_password, settings.port, settings.database,
                   authority.ca_certificate)
    return Primary(settings=settings, data=data, app_url=app_url, app_password=app_password,
                   backup_password=backup_password, public_key_pem=public_pem,
                   ca_certificate=authority.ca_certificate,
                   untrusted_ca=local_certificates.issue_untrusted_ca(workdir / "untrusted"),
                   socket_dir=workdir)


def start_pghoard(
    workdir: Path, processes: Processes, primary: Primary, *, first_backup_timeout: float = 90
) -> tuple[PgHoard, subprocess.Popen[bytes], float]:
    """pghoard configured by the same generator as the deployed Secret (its WAL stream and base
    backups over TLS), started; waits for its first base backup in storage. Returns it, its
    process and the seconds that backup took."""
    settings = primary.settings
    hoard = pghoard_config.PgHoardSettings(site="drill", basebackup_max_rate_kib=64 * 1024)
    wrapper = _write(
        workdir / "bin" / "pg_basebackup_throttled",
        pghoard_config.basebackup_wrapper_script(
            pg_basebackup=str(PG_BIN / "pg_basebackup"),
            max_rate_kib=hoard.basebackup_max_rate_kib,
            fast_checkpoint=True,
        ),
        0o755,
    )
    storage = workdir / "storage"
    config = pghoard_config.pghoard_config(
        hoard,
        storage=pghoard_config.LocalStorage(directory=str(storage)),
        node=pghoard_config.ReplicationNode(
            host=SERVER_NAME,
            hostaddr="127.0.0.1",
            port=settings.port,
            user=settings.backup_user,
            password=primary.backup_password,
            slot=settings.replication_slot,
            ca_file=str(primary.ca_certificate),
        ),
        paths=pghoard_config.PgHoardPaths(
            backup_location=str(workdir / "pghoard"),
            alert_file_dir=str(workdir / "alerts"),
            json_state_file_path=str(workdir / "pghoard" / "state.json"),
            maintenance_mode_file=str(workdir / "pghoard" / "maintenance_mode"),
            pg_data_directory=str(primary.data),
            pg_bin_directory=str(PG_BIN),
            pg_basebackup_path=str(wrapper),
        ),
        public_key_pem=primary.public_key_pem,
    )
    config["http_port"] = free_port()
    # 2.1.0 adaptation: it looks for pg_receivexlog (renamed pg_receivewal in PostgreSQL 10).
    config["backup_sites"]["drill"]["pg_receivexlog_path"] = str(PG_BIN / "pg_receivewal")
    config_path = _write(workdir / "pghoard.json", pghoard_config.render(config))
    launcher = _write(workdir / "bin" / "pghoard_launcher.py", _LAUNCHER, 0o755)
    _chown_tree(workdir)
    python = str(PGHOARD_VENV / "bin" / "python")
    daemon = PgHoard(config_path=config_path, storage=storage, site="drill",
                     command=[python, str(launcher), str(config_path)], python=python,
                     launcher=launcher, log=workdir / "pghoard.log")
    started = time.monotonic()
    process = processes.start(daemon.command, daemon.log)
    _wait_for(
        lambda: _storage_files(storage, "drill", "basebackup") or process.poll() is not None,
        first_backup_timeout,
        "the first base backup in storage",
    )
    if process.poll() is not None:
        raise RuntimeError("pghoard exited before its first base backup")
    return daemon, process, time.monotonic() - started


def _drill(
    workdir: Path, processes: Processes, rows_before: int, rows_after: int, log
) -> DrillResult:
    # PostgreSQL, configured exactly as deployed.
    primary = start_primary(workdir, processes)
    settings, app_url, app_password = primary.settings, primary.app_url, primary.app_password
    plaintext_refused = _refusal(
        f"postgresql://{settings.app_user}:{app_password}@127.0.0.1:{settings.port}/"
        f"{settings.database}?sslmode=disable"
    )
    untrusted_ca_refused = _refusal(
        app_url.replace(str(primary.ca_certificate), str(primary.untrusted_ca)))
    with psycopg.connect(app_url) as connection:
        connection.execute(
            "CREATE TABLE drill_rows (id integer PRIMARY KEY, phase text NOT NULL, payload text)"
        )
    _insert(app_url, 1, rows_before, "before-backup")
    log(f"PostgreSQL 15 on 127.0.0.1:{settings.port}, {rows_before} rows written")

    # pghoard, configured by the same generator as the deployed Secret.
    daemon, pghoard, basebackup_seconds = start_pghoard(workdir, processes, primary)
    storage, config_path, python, launcher = (
        daemon.storage, daemon.config_path, daemon.python, daemon.launcher)
    secrets = workdir / "secrets"
    data = primary.data
    fixup = _write(workdir / "bin" / "fixup_210_restore.py", _FIXUP_210_RESTORE, 0o755)
    _chown_tree(workdir)
    log(f"base backup stored after {basebackup_seconds:.1f}s")
    replication_tls = _wait_for(
        lambda: processes.run(["psql", "-XAtc", (
            "SELECT s.version || ' ' || s.cipher FROM pg_stat_replication r "
            "JOIN pg_stat_ssl s USING (pid) WHERE s.ssl"), "postgres"]).stdout.strip(),
        30,
        "the WAL stream's connection in pg_stat_replication",
    )
    log(f"WAL stream over {replication_tls}")

    _insert(app_url, rows_before + 1, rows_after, "after-backup")
    switched = processes.run(
        ["psql", "-XAtc", "SELECT pg_walfile_name(pg_switch_wal())", "postgres"]
    ).stdout.strip()
    _wait_for(
        lambda: switched in _storage_files(storage, "drill", "xlog"),
        60,
        f"WAL segment {switched} in storage",
    )
    expected = _rows(app_url)
    log(f"{rows_after} rows written after the base backup; WAL {switched} stored")

    # Monitoring: the image's check against the real pghoard's /status.
    def check(*extra: str) -> subprocess.CompletedProcess:
        return processes.run(
            [python, str(CHECK_SCRIPT), "--config", str(config_path), *extra], check=False
        )

    healthy = _wait_for(
        lambda: (c := check("--max-wal-age-minutes", "5")).returncode == 0 and c,
        30,
        "check_backup.py to report healthy",
    )
    stale = check("--max-basebackup-age-hours", "0.00001")

    # Lose the primary and the daemon, then restore from storage alone.
    processes.stop(pghoard)
    processes.stop_postgres(data, mode="immediate")
    shutil.rmtree(data)
    restored = workdir / "restored"
    restore_started = time.monotonic()
    completed = processes.run(
        [
            python,
            str(RESTORE_SCRIPT),
            "--config",
            str(config_path),
            "--private-key",
            str(secrets / "private-key.pem"),
            "--target-dir",
            str(restored),
            "--work-dir",
            str(workdir / "restore-work"),
            "--http-port",
            str(free_port()),
            "--port",
            str(free_port()),
            "--pg-bin-dir",
            str(PG_BIN),
            "--pghoard-bin-dir",
            str(PGHOARD_VENV / "bin"),
            "--timeout",
            "120",
            "--primary-flag=--restore-to-master",
            "--pghoard-command",
            f"{python} {launcher}",
            "--after-download",
            f"{python} {fixup}",
        ],
        check=False,
        timeout=240,
    )
    recovery_seconds = time.monotonic() - restore_started
    if completed.returncode != 0:
        work = workdir / "restore-work"
        tails = "".join(
            f"\n--- {p.name} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            for p in (work / "postgresql.log", work / "pghoard.log")
            if p.exists()
        )
        raise RuntimeError(f"restore failed:\n{completed.stdout}\n{completed.stderr}{tails}")
    timings = json.loads(completed.stdout.strip().splitlines()[-1])
    log(f"restored in {recovery_seconds:.2f}s ({timings})")

    port = free_port()
    processes.start_postgres(restored, port, workdir / "restored.log")
    restored_url = _url(settings.app_user, app_password, port, settings.database,
                        primary.ca_certificate)
    actual = _rows(restored_url)
    processes.stop_postgres(restored)
    return DrillResult(
        rows_before_backup=rows_before,
        rows_after_backup=rows_after,
        rows_restored=len(actual),
        rows_match=actual == expected,
        basebackup_seconds=round(basebackup_seconds, 3),
        restore_download_seconds=timings["download_seconds"],
        restore_replay_seconds=timings["replay_seconds"],
        recovery_seconds=round(recovery_seconds, 3),
        check_healthy_output=healthy.stdout.strip(),
        check_stale_exit_code=stale.returncode,
        check_stale_output=stale.stdout.strip(),
        replication_tls=replication_tls,
        plaintext_refused=plaintext_refused,
        untrusted_ca_refused=untrusted_ca_refused,
    )


def succeeded(result: DrillResult) -> bool:
    """Every row back, the backup check passing on a fresh backup but not on a stale one, the
    WAL stream encrypted, and neither a plaintext client nor one trusting another CA let in."""
    return (result.rows_match
            and result.rows_restored == result.rows_before_backup + result.rows_after_backup
            and result.check_stale_exit_code == 1
            and bool(result.replication_tls)
            and bool(result.plaintext_refused)
            and bool(result.untrusted_ca_refused))


def _row_count(raw: str) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range 1..1000000")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills.postgres_backup",
        description="Back up a real PostgreSQL 15 with pghoard, restore it and compare every "
        "row. The JSON report is the only output on stdout; progress goes to stderr.")
    parser.add_argument("--rows-before", type=_row_count, default=1000,
                        help="rows written before the base backup (default: 1000)")
    parser.add_argument("--rows-after", type=_row_count, default=500,
                        help="rows written after it, recovered from WAL (default: 500)")
    arguments = parser.parse_args(argv)
    missing = prerequisites_missing()
    if missing:
        progress(f"the backup drill cannot run here: {missing}")
        print(json.dumps({"ok": False, "error": missing}, indent=2))
        return 2
    try:
        result = run_drill(rows_before=arguments.rows_before, rows_after=arguments.rows_after)
    except Exception as error:  # the report says what failed; the traceback goes to stderr
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}, indent=2))
        return 1
    ok = succeeded(result)
    print(json.dumps({"ok": ok, **dataclasses.asdict(result)}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
