"""The PostgreSQL exporter sidecar and its role: restricted, least privilege, proven on the
machine's real PostgreSQL (the drill proves the exporter itself over the socket with a password)."""

from __future__ import annotations

import subprocess
import uuid

import psycopg
import pytest

from drills.local_services import POSTGRES_ADMIN_URL
from infra.celery import SecretKeyRef
from infra.observability import postgres_exporter as pe
from infra.validation import ArgsError
from tests.infra.observability.pods import pod_manifest, validate

PASSWORD = SecretKeyRef(name="postgres-credentials", key="monitor-password")


def args(**overrides) -> pe.PostgresExporterArgs:
    return pe.PostgresExporterArgs(password=PASSWORD, **overrides)


def test_sidecar_passes_schema_pod_security_restricted_and_resource_rules():
    manifest = pod_manifest(pe.exporter_container(args()), uid=999, volumes=["run"])
    assert validate(manifest) == []


def test_sidecar_reads_its_password_by_reference_and_reaches_the_database_by_socket_only():
    container = pe.exporter_container(args())
    env = {e.name: e for e in container.env}
    assert env["DATA_SOURCE_PASS"].value is None
    assert env["DATA_SOURCE_PASS"].value_from.secret_key_ref.key == "monitor-password"
    assert env["DATA_SOURCE_URI"].value == (
        "/postgres?host=/var/run/postgresql&port=5432&sslmode=disable")
    assert env["DATA_SOURCE_USER"].value == "postgres_exporter"
    (mount,) = container.volume_mounts
    assert (mount.name, mount.mount_path, mount.read_only) == ("run", "/var/run/postgresql", True)
    assert [(p.name, p.container_port) for p in container.ports] == [("metrics", 9187)]
    assert container.security_context.run_as_user == pe.EXPORTER_UID
    assert container.resources.limits == {"memory": "128Mi"}


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"user": "postgres"}, "PostgresExporterArgs.user", "role of its own"),
        ({"user": "Exporter"}, "PostgresExporterArgs.user", "identifier"),
        ({"image": "quay.io/prometheuscommunity/postgres-exporter:latest"},
         "PostgresExporterArgs.image", "moving tag"),
        ({"connection_limit": 0}, "PostgresExporterArgs.connection_limit", "1..20"),
        ({"port": 80}, "PostgresExporterArgs.port", "1024..65535"),
        ({"statement_timeout_ms": 10}, "PostgresExporterArgs.statement_timeout_ms", "100..60000"),
    ],
)
def test_bad_exporter_settings_name_the_field_and_the_fix(overrides, field, fragment):
    with pytest.raises(ArgsError) as raised:
        args(**overrides)
    assert raised.value.field == field
    assert fragment in str(raised.value)


@pytest.fixture
def monitor_role():
    """A uniquely named monitoring role on the machine's PostgreSQL, dropped afterwards."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is down ({error}): "
                    "scripts/prereq.d/10-services.sh starts it")
    user = f"exporter_{uuid.uuid4().hex[:10]}"
    private = f"private_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {private}")
    admin.execute(f"REVOKE ALL ON DATABASE {private} FROM PUBLIC")
    try:
        yield admin, args(user=user), private
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {private} WITH (FORCE)")
        if _role_exists(admin, user):
            admin.execute(f"DROP OWNED BY {user}")
            admin.execute(f"DROP ROLE {user}")
        admin.close()


def _role_exists(admin, user: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone() is not None


def _apply(sql: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-v", f"monitor_password={password}"],
        input=sql, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.integration
def test_monitoring_role_reads_statistics_only_and_applies_twice(monitor_role):
    admin, exporter, private = monitor_role
    sql = pe.monitoring_role_sql(exporter)
    first = _apply(sql, "first-Secret1")
    assert first.returncode == 0, first.stderr
    second = _apply(sql, "second-Secret2")  # idempotent: a later start, or a rotated password
    assert second.returncode == 0, second.stderr

    role = admin.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
        "rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s", [exporter.user]
    ).fetchone()
    assert role[:5] == (False, False, False, False, False)
    assert role[5] == exporter.connection_limit
    assert "default_transaction_read_only=on" in role[6]
    assert f"statement_timeout={exporter.statement_timeout_ms}" in role[6]
    members = admin.execute(
        "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
        "JOIN pg_roles b ON b.oid = m.roleid WHERE r.rolname = %s", [exporter.user]
    ).fetchall()
    assert members == [("pg_monitor",)]

    monitor_url = POSTGRES_ADMIN_URL.replace("postgres@", f"{exporter.user}@", 1)
    with psycopg.connect(monitor_url, autocommit=True) as monitor:
        # What the exporter needs: other sessions' states, settings, replication slots.
        assert monitor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state IS NOT NULL").fetchone()[0] >= 1
        assert monitor.execute(
            "SELECT setting FROM pg_settings WHERE name = 'max_connections'").fetchone()
        monitor.execute("SELECT * FROM pg_replication_slots").fetchall()
        # What it must not do: write anything.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            monitor.execute("CREATE TEMP TABLE sneaky (x int)")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(monitor_url.rsplit("/", 1)[0] + f"/{private}", connect_timeout=5)


def test_role_script_reads_the_password_from_a_file_and_waits_for_the_server():
    script = pe.monitoring_role_script(args(), password_file="/run/secrets/postgres/monitor")
    assert 'monitor_password="$(cat /run/secrets/postgres/monitor)"' in script
    assert "pg_isready" in script
    assert "\\gexec" in script  # creates the role only when missing
