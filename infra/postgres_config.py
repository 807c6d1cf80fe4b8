"""PostgreSQL's runtime files, as pure functions of typed settings.

Owns `postgresql.conf`, `pg_hba.conf` and the first-start init script that creates the
application and backup roles. The Kubernetes component (`infra/postgres.py`) mounts what these
functions return, and the backup/restore drill (`drills/postgres_backup.py`) runs a real server
on the very same text, so the drill tests what is deployed.

Deliberately does not import pulumi, know about Kubernetes objects, or hold any secret: passwords
are read by the init script from files at start-up, never written into these files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# PostgreSQL identifiers we generate are plain lower-case words: no quoting rules to get wrong.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

MIB = 1024 * 1024


def _check_identifier(owner: str, field: str, value: str) -> None:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{owner}.{field}: {value!r} is not a plain PostgreSQL identifier; use 1-63 characters "
            "of lower-case letters, digits and '_', starting with a letter or '_'"
        )


@dataclass(frozen=True, kw_only=True)
class ServerTls:
    """Where the server finds its certificate, key and the CA that signed it (PEM files).

    With TLS on, ``pg_hba.conf`` accepts network connections only over TLS (``hostssl``; plain
    ``host`` connections are refused by name), so no password or row crosses the pod network in
    clear text; clients verify the server with ``sslmode=verify-full`` against the CA.
    """

    certificate_file: str
    key_file: str
    ca_file: str
    min_protocol_version: str = "TLSv1.3"
    """Every client of the platform (libpq 15+, psycopg's bundled libpq, Go's TLS in the exporter)
    speaks TLS 1.3; 1.2 stays available as a setting for older tools."""

    def __post_init__(self) -> None:
        for field in ("certificate_file", "key_file", "ca_file"):
            value = getattr(self, field)
            if not value.startswith("/") or "'" in value:
                raise ValueError(
                    f"ServerTls.{field}: {value!r}; use an absolute path without quotes"
                )
        if self.min_protocol_version not in ("TLSv1.2", "TLSv1.3"):
            raise ValueError(
                f"ServerTls.min_protocol_version: {self.min_protocol_version!r}; allowed "
                "TLSv1.2, TLSv1.3"
            )


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    """What the server's configuration is derived from.

    ``memory_limit_mib`` is the container's memory limit: every memory setting and
    ``max_connections`` are sized from it, so a bigger pod gets a bigger cache without anyone
    editing numbers by hand, and a small pod cannot be configured to exceed its own limit.
    """

    memory_limit_mib: int
    storage_size_gib: int
    port: int = 5432
    database: str = "hacelery"
    app_user: str = "hacelery"
    backup_user: str = "pghoard"
    replication_slot: str = "pghoard"
    archive_timeout_seconds: int = 60
    """Upper bound on the recovery point of an active database: a WAL segment is closed (and
    streamed to the backup) at least this often while anything is written."""
    wal_keep_size_mib: int = 1024
    max_wal_senders: int = 4
    tls: ServerTls | None = None
    """TLS for every network connection (None: plain TCP, for callers that have no certificate)."""

    def __post_init__(self) -> None:
        owner = "PostgresSettings"
        if self.memory_limit_mib < 256:
            raise ValueError(
                f"{owner}.memory_limit_mib: {self.memory_limit_mib} is too small; PostgreSQL "
                "needs at least 256 MiB to run with the backup stream attached"
            )
        if self.storage_size_gib < 1:
            raise ValueError(f"{owner}.storage_size_gib: {self.storage_size_gib}; use 1 or more")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"{owner}.port: {self.port} is not a TCP port (1-65535)")
        for field in ("database", "app_user", "backup_user", "replication_slot"):
            _check_identifier(owner, field, getattr(self, field))
        if len({self.app_user, self.backup_user, "postgres"}) != 3:
            raise ValueError(
                f"{owner}.app_user/backup_user: {self.app_user!r} and {self.backup_user!r} must "
                "differ from each other and from 'postgres' (each role has one purpose)"
            )
        if not 10 <= self.archive_timeout_seconds <= 3600:
            raise ValueError(
                f"{owner}.archive_timeout_seconds: {self.archive_timeout_seconds}; allowed 10-3600 "
                "(below 10 fills the bucket with near-empty segments, above 3600 loses up to an "
                "hour of writes)"
            )
        if self.wal_keep_size_mib < 64:
            raise ValueError(f"{owner}.wal_keep_size_mib: {self.wal_keep_size_mib}; use 64 or more")
        if self.wal_keep_size_mib * 4 > self.storage_size_gib * 1024:
            raise ValueError(
                f"{owner}.wal_keep_size_mib: {self.wal_keep_size_mib} MiB is more than a quarter "
                f"of the {self.storage_size_gib} GiB volume; lower it or grow storage_size_gib"
            )
        if not 2 <= self.max_wal_senders <= 32:
            raise ValueError(
                f"{owner}.max_wal_senders: {self.max_wal_senders}; allowed 2-32 (the backup needs "
                "two at once: the WAL stream and a base backup)"
            )


@dataclass(frozen=True)
class MemoryPlan:
    """The memory settings derived from the container limit, in MiB (connections as a count)."""

    max_connections: int
    shared_buffers_mib: int
    effective_cache_size_mib: int
    work_mem_mib: int
    maintenance_work_mem_mib: int


def memory_plan(memory_limit_mib: int) -> MemoryPlan:
    """Size connections and memory from the container limit.

    shared_buffers at 25% is PostgreSQL's own guidance for a dedicated server. The cgroup limit
    counts page cache too, so effective_cache_size (a planner hint, not an allocation) assumes
    half of the limit is cache. Connections get ~16 MiB each, clamped to 20-200: past 200 a pooler
    is the right answer, not more backends. work_mem is what is left after shared_buffers, split
    across every connection running two sorts at once, so a busy server cannot be OOM-killed by
    its own configuration.
    """
    max_connections = max(20, min(200, memory_limit_mib // 16))
    shared_buffers = memory_limit_mib // 4
    effective_cache_size = memory_limit_mib // 2
    maintenance_work_mem = max(16, min(1024, memory_limit_mib // 16))
    spare = memory_limit_mib - shared_buffers - maintenance_work_mem
    work_mem = max(1, spare // (max_connections * 2))
    return MemoryPlan(
        max_connections=max_connections,
        shared_buffers_mib=shared_buffers,
        effective_cache_size_mib=effective_cache_size,
        work_mem_mib=work_mem,
        maintenance_work_mem_mib=maintenance_work_mem,
    )


def max_slot_wal_keep_size_mib(settings: PostgresSettings) -> int:
    """Cap on WAL held back by the backup slot: half the volume.

    Without a cap, a backup daemon that is down for days makes the slot retain WAL until the
    volume fills and the *database* stops. With it, the slot is invalidated first: the backup
    breaks (and its monitoring fails), the database keeps running.
    """
    return settings.storage_size_gib * 1024 // 2


def postgresql_conf(settings: PostgresSettings, *, extra: dict[str, str] | None = None) -> str:
    """The server configuration. ``extra`` lets a caller add keys (never override ours)."""
    plan = memory_plan(settings.memory_limit_mib)
    entries: list[tuple[str, str, str]] = [
        ("listen_addresses", "'*'", "reachable from other pods; the NetworkPolicy decides who"),
        ("port", str(settings.port), ""),
        ("max_connections", str(plan.max_connections), "sized from the memory limit"),
        ("shared_buffers", f"{plan.shared_buffers_mib}MB", "25% of the memory limit"),
        ("effective_cache_size", f"{plan.effective_cache_size_mib}MB", "planner hint only"),
        ("work_mem", f"{plan.work_mem_mib}MB", "per sort; bounded so all connections fit"),
        ("maintenance_work_mem", f"{plan.maintenance_work_mem_mib}MB", ""),
        ("password_encryption", "'scram-sha-256'", "never md5"),
        # 'replica' is the least that physical backups and streaming need.
        ("wal_level", "'replica'", "the base backup and the WAL stream both need it"),
        ("max_wal_senders", str(settings.max_wal_senders), "WAL stream + base backup at once"),
        ("max_replication_slots", str(settings.max_wal_senders), ""),
        (
            "wal_keep_size",
            f"{settings.wal_keep_size_mib}MB",
            "a restarting WAL streamer still finds recent segments",
        ),
        (
            "max_slot_wal_keep_size",
            f"{max_slot_wal_keep_size_mib(settings)}MB",
            "a dead backup daemon can never fill the volume",
        ),
        (
            "archive_timeout",
            f"{settings.archive_timeout_seconds}s",
            "closes a segment at least this often while anything is written: bounds the RPO",
        ),
        ("wal_compression", "on", "smaller WAL to stream and store"),
        ("checkpoint_timeout", "'15min'", "fewer full-page writes than the 5min default"),
        ("max_wal_size", f"{max(1024, settings.storage_size_gib * 1024 // 10)}MB", ""),
        ("idle_in_transaction_session_timeout", "'10min'", "a stuck client cannot hold locks"),
        ("log_destination", "'stderr'", "the container runtime collects stderr"),
        ("logging_collector", "off", ""),
        ("log_min_duration_statement", "1000", "log queries slower than a second"),
        ("log_connections", "off", ""),
        ("log_line_prefix", "'%m [%p] %q%u@%d '", ""),
        ("shared_preload_libraries", "''", ""),
    ]
    if settings.tls is not None:
        tls = settings.tls
        entries += [
            ("ssl", "on", "every network client must use TLS (pg_hba.conf: hostssl only)"),
            ("ssl_cert_file", f"'{tls.certificate_file}'", "signed by the stack's CA"),
            ("ssl_key_file", f"'{tls.key_file}'", ""),
            ("ssl_ca_file", f"'{tls.ca_file}'", ""),
            ("ssl_min_protocol_version", f"'{tls.min_protocol_version}'", ""),
            ("ssl_prefer_server_ciphers", "on", ""),
        ]
    ours = {key for key, _, _ in entries}
    lines = ["# Generated by infra/postgres_config.py; edit the settings, not this file."]
    for key, value, why in entries:
        lines.append(f"{key} = {value}" + (f"  # {why}" if why else ""))
    for key, value in sorted((extra or {}).items()):
        if key in ours:
            raise ValueError(
                f"postgresql_conf extra: {key!r} is already set by the generator ({key} belongs to "
                "PostgresSettings); change the setting there instead"
            )
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def pg_hba_conf(settings: PostgresSettings) -> str:
    """Who may connect, from where, and how. First match wins; the last line rejects the rest."""
    network = "host"
    rows = [
        # Inside the pod only (kubectl exec), the OS user must be `postgres`.
        ("local", "all", "postgres", "", "peer"),
        ("local", "all", "all", "", "scram-sha-256"),
    ]
    if settings.tls is not None:
        # Plain TCP is refused before any password is asked for: a client that forgot TLS
        # gets "no pg_hba.conf entry ... no encryption", not a password prompt in clear text.
        network = "hostssl"
        rows.append(("hostnossl", "all", "all", "all", "reject"))
    rows += [
        # The application: its own database only, never replication.
        (network, settings.database, settings.app_user, "all", "scram-sha-256"),
        # The backup daemon: replication protocol only (it cannot read tables over SQL).
        (network, "replication", settings.backup_user, "all", "scram-sha-256"),
        ("host", "all", "all", "all", "reject"),
    ]
    lines = ["# Generated by infra/postgres_config.py. TYPE DATABASE USER ADDRESS METHOD"]
    for kind, database, user, address, method in rows:
        lines.append("  ".join(part for part in (kind, database, user, address, method) if part))
    return "\n".join(lines) + "\n"


def init_sql(settings: PostgresSettings) -> str:
    """SQL run once, on an empty cluster, by a superuser.

    Passwords arrive as psql variables (``-v app_password=...``) so they never appear in a file
    or a process list; ``:'var'`` makes psql quote them as literals.
    """
    return f"""\
CREATE ROLE {settings.app_user} LOGIN PASSWORD :'app_password';
CREATE DATABASE {settings.database} OWNER {settings.app_user};
REVOKE ALL ON DATABASE {settings.database} FROM PUBLIC;
CREATE ROLE {settings.backup_user} LOGIN REPLICATION PASSWORD :'backup_password';
-- The slot keeps every WAL segment until the backup stream has it (bounded by
-- max_slot_wal_keep_size); reserved now, so no segment is lost before the first connection.
SELECT pg_create_physical_replication_slot('{settings.replication_slot}', true);
"""


def init_script(settings: PostgresSettings, *, secrets_dir: str) -> str:
    """Shell script for the image's /docker-entrypoint-initdb.d: reads passwords from files."""
    return f"""\
#!/usr/bin/env bash
# Generated by infra/postgres_config.py. Runs once, when the data directory is empty.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \\
    -v app_password="$(cat {secrets_dir}/app-password)" \\
    -v backup_password="$(cat {secrets_dir}/backup-password)" <<'SQL'
{init_sql(settings)}SQL
"""


def client_tls_parameters(ca_file: str) -> dict[str, str]:
    """libpq parameters of a client that verifies the server: the certificate must be signed by
    the stack's CA *and* name the host it dialled (verify-full), so neither a stolen address nor
    another certificate of the same CA passes."""
    return {"sslmode": "verify-full", "sslrootcert": ca_file}


def database_url(
    *, user: str, password: str, host: str, port: int, database: str, ca_file: str | None = None
) -> str:
    """The application's connection URL (passwords are alphanumeric: nothing to escape); with
    ``ca_file``, TLS verified against that CA."""
    if not password.isalnum():
        raise ValueError(
            "database_url password: only letters and digits are supported (the generated "
            "passwords are alphanumeric so the URL needs no escaping)"
        )
    url = f"postgresql://{user}:{password}@{host}:{port}/{database}"
    if ca_file is not None:
        url += "?" + "&".join(f"{k}={v}" for k, v in client_tls_parameters(ca_file).items())
    return url
