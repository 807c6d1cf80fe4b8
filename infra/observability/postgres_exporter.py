"""PostgreSQL's metrics: a postgres_exporter sidecar with a least-privilege monitoring role.

Owns ``PostgresExporterArgs``, the sidecar's ``ContainerArgs`` (restricted, read-only root,
requests and a memory limit, the password by Secret reference) and the SQL/script that create
its role. The sidecar joins the database pod and connects over the pod's shared Unix socket
directory (the ``run`` emptyDir the server already writes its socket to), so:

- the exporter needs no TCP access to the database and no ``pg_hba.conf`` change: the existing
  ``local all all scram-sha-256`` line authenticates it by password;
- it is scraped on its own port, which the database pod's NetworkPolicy opens to the scraper
  only (``scrape.scraper_ingress_rule``).

The role is least privilege: a login that only holds ``pg_monitor`` (read statistics and
settings, nothing else), cannot connect to the application database (its CONNECT is revoked
from PUBLIC by the init SQL), runs every session read-only with a statement timeout, and may
hold at most a few connections so a stuck scraper cannot take the application's.

Does not own the database pod (the database component adds the sidecar and the Secret key and
runs the role script) and does not choose what is alerted on (``alerts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi_kubernetes as k8s

from infra import pod_security
from infra.celery import ContainerResources, SecretKeyRef, resource_requirements, secret_env
from infra.images import validate_image_reference
from infra.observability import sources
from infra.validation import check

DEFAULT_IMAGE = "quay.io/prometheuscommunity/postgres-exporter:v0.20.1"
"""Pinned by tag (the project's newest release when written); pin the digest where the
registry is reachable. Its metric names used by the rules are the same in Debian's 0.11.1."""
EXPORTER_UID = 65534
"""The image's own user (``nobody``); the pod's fsGroup lets it open the socket directory."""
SOCKET_VOLUME = "run"
"""The database pod's emptyDir at /var/run/postgresql (infra/postgres.py)."""
SOCKET_DIR = "/var/run/postgresql"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, kw_only=True)
class PostgresExporterArgs:
    """Inputs of the exporter sidecar. Only the password's Secret reference is required."""

    password: SecretKeyRef
    """The monitoring role's password (a key of the database's credentials Secret)."""
    image: str = DEFAULT_IMAGE
    user: str = "postgres_exporter"
    database: str = "postgres"
    """The maintenance database: statistics and settings are cluster-wide."""
    socket_dir: str = SOCKET_DIR
    database_port: int = 5432
    """The server's port: it names the socket file (``.s.PGSQL.<port>``) even without TCP."""
    port: int = sources.POSTGRES_EXPORTER_PORT
    connection_limit: int = 3
    """The exporter opens one connection per scrape; a few more cover overlapping scrapes."""
    statement_timeout_ms: int = 5000
    """A statistics query that runs longer is cancelled instead of piling up behind a lock."""
    resources: ContainerResources = field(
        default_factory=lambda: ContainerResources(
            cpu_request="10m", memory_request="32Mi", memory_limit="128Mi"
        )
    )

    def __post_init__(self) -> None:
        owner = "PostgresExporterArgs"
        validate_image_reference(self.image, field=f"{owner}.image")
        for name in ("user", "database"):
            value = getattr(self, name)
            check(
                isinstance(value, str) and bool(_IDENTIFIER.match(value)),
                f"{owner}.{name}",
                value,
                "a plain PostgreSQL identifier (lower-case letters, digits, '_'; 1-63)",
            )
        check(
            self.user not in ("postgres", "pghoard", "hacelery"),
            f"{owner}.user",
            self.user,
            "a role of its own (not the superuser, backup or application role)",
        )
        check(
            isinstance(self.socket_dir, str) and self.socket_dir.startswith("/"),
            f"{owner}.socket_dir",
            self.socket_dir,
            "an absolute path",
        )
        check(
            isinstance(self.database_port, int) and 1 <= self.database_port <= 65535,
            f"{owner}.database_port",
            self.database_port,
            "the server's TCP port (1..65535)",
        )
        check(
            isinstance(self.port, int) and 1024 <= self.port <= 65535,
            f"{owner}.port",
            self.port,
            "an unprivileged TCP port 1024..65535",
        )
        check(
            isinstance(self.connection_limit, int) and 1 <= self.connection_limit <= 20,
            f"{owner}.connection_limit",
            self.connection_limit,
            "1..20 connections",
        )
        check(
            isinstance(self.statement_timeout_ms, int)
            and 100 <= self.statement_timeout_ms <= 60_000,
            f"{owner}.statement_timeout_ms",
            self.statement_timeout_ms,
            "100..60000 milliseconds",
        )


def data_source_uri(args: PostgresExporterArgs) -> str:
    """``DATA_SOURCE_URI``: the exporter prefixes ``postgresql://user:pass@``; an empty host with
    ``host=<dir>`` means the Unix socket in that directory."""
    return f"/{args.database}?host={args.socket_dir}&port={args.database_port}&sslmode=disable"


def exporter_arguments(args: PostgresExporterArgs) -> list[str]:
    """Command-line flags both the sidecar and the drill pass (valid for 0.11 through 0.20)."""
    return [f"--web.listen-address=:{args.port}", "--log.format=json"]


def exporter_environment(args: PostgresExporterArgs) -> dict[str, str]:
    """The plain environment (the password comes separately, from a Secret)."""
    return {"DATA_SOURCE_URI": data_source_uri(args), "DATA_SOURCE_USER": args.user}


def exporter_container(args: PostgresExporterArgs) -> k8s.core.v1.ContainerArgs:
    """Pure: the sidecar for the database pod (it mounts the pod's ``run`` volume read-only)."""
    env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in exporter_environment(args).items()]
    env.append(secret_env("DATA_SOURCE_PASS", args.password))
    probe = k8s.core.v1.TCPSocketActionArgs(port=sources.METRICS_PORT_NAME)
    return k8s.core.v1.ContainerArgs(
        name="postgres-exporter",
        image=args.image,
        image_pull_policy="IfNotPresent",
        args=exporter_arguments(args),
        env=env,
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name=sources.METRICS_PORT_NAME, container_port=args.port, protocol="TCP"
            )
        ],
        resources=resource_requirements(args.resources),
        security_context=pod_security.container_security_context(EXPORTER_UID),
        # The listener answering is what matters: a database that is down is reported by the
        # exporter as pg_up 0 (an alert), not fixed by restarting the exporter.
        readiness_probe=k8s.core.v1.ProbeArgs(tcp_socket=probe, period_seconds=10),
        liveness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=probe, period_seconds=30, failure_threshold=3, timeout_seconds=5
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name=SOCKET_VOLUME, mount_path=args.socket_dir,
                                        read_only=True)
        ],
    )


def monitoring_role_sql(args: PostgresExporterArgs) -> str:
    """Idempotent SQL for psql, run by the superuser: create or update the monitoring role.

    The password arrives as the psql variable ``monitor_password`` (``-v``), so it is never in a
    file or a process list; ``\\gexec`` creates the role only when missing, so the same script
    serves the first start and every later one (rotating the password, upgrading a database
    created before monitoring existed).
    """
    user = args.user  # a validated plain identifier: nothing to quote
    return f"""\
SELECT 'CREATE ROLE {user} LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{user}') \\gexec
ALTER ROLE {user} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  CONNECTION LIMIT {args.connection_limit} PASSWORD :'monitor_password';
-- pg_monitor: read every statistics view and setting; no data, no writes.
GRANT pg_monitor TO {user};
GRANT CONNECT ON DATABASE {args.database} TO {user};
ALTER ROLE {user} SET default_transaction_read_only = on;
ALTER ROLE {user} SET statement_timeout = {args.statement_timeout_ms};
ALTER ROLE {user} SET lock_timeout = 1000;
"""  # noqa: S608 - identifiers validated in PostgresExporterArgs; the password is a psql variable


def monitoring_role_script(args: PostgresExporterArgs, *, password_file: str) -> str:
    """Shell for the database container: apply ``monitoring_role_sql`` over the local socket.

    Safe as an init script (first start) and as a start-up hook: it waits (bounded) for the
    server, and a failure leaves the exporter unable to log in, which PostgresDown reports.
    """
    return f"""\
#!/usr/bin/env bash
# Generated by infra/observability/postgres_exporter.py. Idempotent.
set -euo pipefail
for _ in $(seq 60); do
  pg_isready --quiet --host {args.socket_dir} --port {args.database_port} && break
  sleep 1
done
psql -v ON_ERROR_STOP=1 --host {args.socket_dir} --port {args.database_port} \\
    --username postgres --dbname postgres \\
    -v monitor_password="$(cat {password_file})" <<'SQL'
{monitoring_role_sql(args)}SQL
"""
