"""pghoard's configuration (`pghoard.json`) and its base-backup wrapper, as pure functions.

Owns every pghoard setting the platform chooses: the WAL stream (pg_receivewal on a replication
slot), base backup schedule and retention, compression, client-side encryption, the throttles
that keep a base backup from starving the database, and where alerts and state go. The backup
component (`infra/backup.py`) puts the result in a Kubernetes Secret; the backup/restore drill
(`drills/postgres_backup.py`) runs a real pghoard on the output of the same function with only
the storage and the paths swapped.

Deliberately does not import pulumi or talk to any cloud. Google storage is written without a
``credential_file`` so pghoard uses Application Default Credentials, which on GKE are the
Workload Identity of the pod: no key file exists anywhere. The daemon's config carries only the
*public* encryption key (enough to write backups); the private key is added only by the restore
tooling (`pghoard/restore.py`), so a leaked daemon config cannot decrypt a single backup.

pghoard has no I/O rate limit of its own. The wrapper from ``basebackup_wrapper_script`` gives
pg_basebackup ``--max-rate``, which makes the *server* send the base backup no faster than that;
CPU and memory are bounded by the container's limits (see `infra/backup.py`).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from infra.postgres_config import client_tls_parameters

COMPRESSION_ALGORITHMS = ("snappy", "zstd", "lzma")
BASEBACKUP_MODES = ("pipe", "basic")
"""Modes that use pg_basebackup over the network. `local-tar` and `delta` read $PGDATA directly,
which a separate backup pod cannot (the volume is ReadWriteOnce and belongs to PostgreSQL)."""

_SITE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_PEM_PUBLIC = "-----BEGIN PUBLIC KEY-----"


@dataclass(frozen=True, kw_only=True)
class GoogleStorage:
    """A GCS bucket reached with the pod's Workload Identity (no credentials in the file)."""

    project_id: str
    bucket_name: str

    def __post_init__(self) -> None:
        if not self.project_id:
            raise ValueError("GoogleStorage.project_id: empty; give the GCP project id")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", self.bucket_name):
            raise ValueError(
                f"GoogleStorage.bucket_name: {self.bucket_name!r} is not a GCS bucket name "
                "(3-63 of a-z 0-9 . _ -, starting and ending with a letter or digit)"
            )


@dataclass(frozen=True, kw_only=True)
class LocalStorage:
    """A directory (a PVC in the local stack, a temp dir in the drill)."""

    directory: str

    def __post_init__(self) -> None:
        if not self.directory.startswith("/"):
            raise ValueError(f"LocalStorage.directory: {self.directory!r} must be an absolute path")


Storage = GoogleStorage | LocalStorage


@dataclass(frozen=True, kw_only=True)
class ReplicationNode:
    """How pghoard reaches PostgreSQL: a replication-only role and its slot."""

    host: str
    port: int
    user: str
    password: str
    slot: str
    ca_file: str | None = None
    """The stack's CA certificate: with it the connection is TLS, verified (``verify-full``);
    without it libpq only prefers TLS, and the server's pg_hba.conf decides."""
    hostaddr: str | None = None
    """Dial this address but verify the certificate against ``host`` (libpq ``hostaddr``): lets a
    drill on 127.0.0.1 check the cluster's own DNS name."""


@dataclass(frozen=True, kw_only=True)
class PgHoardPaths:
    """Every path pghoard writes or reads. Set explicitly: its defaults point at /var/lib/pghoard
    and the current directory, which a read-only container (or a drill) does not have."""

    backup_location: str
    """Scratch space for WAL and base backups on their way to storage."""
    alert_file_dir: str
    json_state_file_path: str
    maintenance_mode_file: str
    pg_data_directory: str
    """pghoard 2.2+ reads only PG_VERSION from here (to pick matching client binaries); the pod
    mounts a one-file directory, the drill points at the real data directory."""
    pg_bin_directory: str
    pg_basebackup_path: str
    """The throttling wrapper from ``basebackup_wrapper_script``."""


@dataclass(frozen=True, kw_only=True)
class PgHoardSettings:
    """The backup policy. Defaults are the production choice, each explained where used."""

    site: str = "hacelery"
    basebackup_interval_hours: int = 24
    basebackup_count: int = 4
    basebackup_mode: str = "pipe"
    basebackup_max_rate_kib: int = 32 * 1024
    """pg_basebackup --max-rate (kB/s): how fast the server may send the base backup."""
    basebackup_threads: int = 1
    basebackup_chunks_in_progress: int = 2
    basebackup_chunk_size_mib: int = 512
    compression_algorithm: str = "zstd"
    compression_level: int = 3
    compression_threads: int = 1
    transfer_threads: int = 2
    upload_retries_warning_limit: int = 3
    http_port: int = 16000
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        owner = "PgHoardSettings"
        if not _SITE.fullmatch(self.site):
            raise ValueError(
                f"{owner}.site: {self.site!r}; use 1-40 of a-z 0-9 '-', starting with a letter "
                "(it becomes the object prefix in the bucket)"
            )
        if not 1 <= self.basebackup_interval_hours <= 24 * 7:
            raise ValueError(
                f"{owner}.basebackup_interval_hours: {self.basebackup_interval_hours}; allowed "
                "1-168 (a restore replays all WAL since the last base backup)"
            )
        if not 2 <= self.basebackup_count <= 100:
            raise ValueError(
                f"{owner}.basebackup_count: {self.basebackup_count}; allowed 2-100 (at least two, "
                "so a broken newest backup still leaves one to restore)"
            )
        if self.basebackup_mode not in BASEBACKUP_MODES:
            raise ValueError(
                f"{owner}.basebackup_mode: {self.basebackup_mode!r}; allowed {BASEBACKUP_MODES}"
            )
        if not 32 <= self.basebackup_max_rate_kib <= 1024 * 1024:
            raise ValueError(
                f"{owner}.basebackup_max_rate_kib: {self.basebackup_max_rate_kib}; pg_basebackup "
                "accepts 32-1048576 kB/s"
            )
        for field, low, high in (
            ("basebackup_threads", 1, 4),
            ("basebackup_chunks_in_progress", 1, 10),
            ("compression_threads", 1, 8),
            ("transfer_threads", 1, 8),
            ("upload_retries_warning_limit", 1, 100),
        ):
            value = getattr(self, field)
            if not low <= value <= high:
                raise ValueError(f"{owner}.{field}: {value}; allowed {low}-{high}")
        if not 16 <= self.basebackup_chunk_size_mib <= 4096:
            raise ValueError(
                f"{owner}.basebackup_chunk_size_mib: {self.basebackup_chunk_size_mib}; allowed "
                "16-4096"
            )
        if self.compression_algorithm not in COMPRESSION_ALGORITHMS:
            raise ValueError(
                f"{owner}.compression_algorithm: {self.compression_algorithm!r}; allowed "
                f"{COMPRESSION_ALGORITHMS}"
            )
        if not 0 <= self.compression_level <= 19:
            raise ValueError(f"{owner}.compression_level: {self.compression_level}; allowed 0-19")
        if not 1024 <= self.http_port <= 65535:
            raise ValueError(f"{owner}.http_port: {self.http_port}; allowed 1024-65535")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(
                f"{owner}.log_level: {self.log_level!r}; allowed DEBUG, INFO, WARNING, ERROR"
            )


ENCRYPTION_KEY_ID = "platform-1"
"""Key id written into every backup's metadata; a rotated key gets a new id, old ones stay
listed (with their private halves in the restore Secret) so old backups remain restorable."""


def object_storage(storage: Storage) -> dict[str, Any]:
    """pghoard's ``object_storage`` block. Google: no credential_file, ever."""
    if isinstance(storage, GoogleStorage):
        return {
            "storage_type": "google",
            "project_id": storage.project_id,
            "bucket_name": storage.bucket_name,
        }
    return {"storage_type": "local", "directory": storage.directory}


def pghoard_config(
    settings: PgHoardSettings,
    *,
    storage: Storage,
    node: ReplicationNode,
    paths: PgHoardPaths,
    public_key_pem: str,
) -> dict[str, Any]:
    """The daemon's whole configuration, as a JSON-ready dict (see ``render``)."""
    if _PEM_PUBLIC not in public_key_pem:
        raise ValueError(
            "pghoard_config public_key_pem: not a PEM public key (expected "
            f"{_PEM_PUBLIC!r}); pass the public half of the backup encryption key"
        )
    site = {
        "nodes": [
            {
                "host": node.host,
                "port": node.port,
                "user": node.user,
                "password": node.password,
                "slot": node.slot,
                # pghoard hands every key to libpq: with the stack's CA, the WAL stream and base
                # backups travel over TLS to a server whose certificate names the host.
                **(client_tls_parameters(node.ca_file) if node.ca_file else {"sslmode": "prefer"}),
                **({"hostaddr": node.hostaddr} if node.hostaddr else {}),
            }
        ],
        # pg_receivewal on a replication slot: WAL is streamed as written, nothing is lost if
        # pghoard restarts (the slot holds it), and PostgreSQL needs no archive_command.
        "active_backup_mode": "pg_receivexlog",
        "basebackup_mode": settings.basebackup_mode,
        "basebackup_interval_hours": settings.basebackup_interval_hours,
        "basebackup_count": settings.basebackup_count,
        # Throttles: one thread, few chunks on disk at once (chunk settings bound the scratch
        # space if the mode is ever switched to a chunked one).
        "basebackup_threads": settings.basebackup_threads,
        "basebackup_chunks_in_progress": settings.basebackup_chunks_in_progress,
        "basebackup_chunk_size": settings.basebackup_chunk_size_mib * 1024 * 1024,
        "basebackup_compression_threads": 0,
        "encryption_key_id": ENCRYPTION_KEY_ID,
        "encryption_keys": {ENCRYPTION_KEY_ID: {"public": public_key_pem}},
        "object_storage": object_storage(storage),
        "pg_data_directory": paths.pg_data_directory,
        "pg_bin_directory": paths.pg_bin_directory,
        "pg_basebackup_path": paths.pg_basebackup_path,
    }
    return {
        "backup_location": paths.backup_location,
        "alert_file_dir": paths.alert_file_dir,
        "json_state_file_path": paths.json_state_file_path,
        "maintenance_mode_file": paths.maintenance_mode_file,
        # Loopback only: the restore_command and the monitoring probe run in the same pod.
        "http_address": "127.0.0.1",
        "http_port": settings.http_port,
        "log_level": settings.log_level,
        "compression": {
            "algorithm": settings.compression_algorithm,
            "level": settings.compression_level,
            # pghoard's default is cpu_count + 1 threads, where cpu_count is the *node's*: a
            # throttled pod would start a thread per node core and thrash against its quota.
            "thread_count": settings.compression_threads,
        },
        # Same reason: the default is min(cpu_count + 3, 20) parallel uploads.
        "transfer": {
            "thread_count": settings.transfer_threads,
            "upload_retries_warning_limit": settings.upload_retries_warning_limit,
        },
        "upload_retries_warning_limit": settings.upload_retries_warning_limit,
        "restore_process_count": 2,
        "backup_sites": {settings.site: site},
    }


def render(config: dict[str, Any]) -> str:
    """The file's text: stable key order, so an unchanged config never shows as a diff."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def basebackup_wrapper_script(
    *, pg_basebackup: str, max_rate_kib: int, fast_checkpoint: bool = False
) -> str:
    """A ``pg_basebackup`` that never sends faster than ``max_rate_kib`` kB/s.

    pghoard builds the pg_basebackup command line itself and offers no rate option; pointing
    ``pg_basebackup_path`` at this wrapper adds one. ``--max-rate`` is enforced by the server's
    WAL sender, so the database's disk and network see at most this rate: the unthrottled base
    backup that once starved a node cannot happen again. The checkpoint stays *spread* in
    production (no I/O burst at the start); ``fast_checkpoint`` is for drills that cannot wait.
    """
    if not 32 <= max_rate_kib <= 1024 * 1024:
        raise ValueError(
            f"basebackup_wrapper_script max_rate_kib: {max_rate_kib}; pg_basebackup accepts "
            "32-1048576 kB/s"
        )
    checkpoint = "fast" if fast_checkpoint else "spread"
    binary = shlex.quote(pg_basebackup)
    return f"""\
#!/bin/sh
# Generated by infra/pghoard_config.py: pg_basebackup with a rate limit (pghoard has none).
if [ "$1" = "--version" ]; then
    exec {binary} --version
fi
exec {binary} --max-rate={max_rate_kib}k --checkpoint={checkpoint} "$@"
"""
