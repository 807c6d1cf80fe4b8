"""postgresql.conf, pg_hba.conf and the init script, from typed settings."""

from __future__ import annotations

import re

import pytest

from infra import postgres_config as pc


def settings(**overrides) -> pc.PostgresSettings:
    values = {"memory_limit_mib": 2048, "storage_size_gib": 20}
    values.update(overrides)
    return pc.PostgresSettings(**values)


def conf_values(text: str) -> dict[str, str]:
    result = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        result[key.strip()] = value.split("#", 1)[0].strip()
    return result


def mib(value: str) -> int:
    assert value.endswith("MB"), value
    return int(value[:-2])


@pytest.mark.parametrize("memory", [256, 512, 1024, 2048, 8192, 65536])
def test_memory_settings_fit_inside_the_container_limit(memory):
    plan = pc.memory_plan(memory)
    worst_case = (
        plan.shared_buffers_mib
        + plan.maintenance_work_mem_mib
        + plan.max_connections * 2 * plan.work_mem_mib
    )
    assert worst_case <= memory
    assert plan.shared_buffers_mib == memory // 4


def test_connections_and_buffers_grow_with_memory():
    small, large = pc.memory_plan(512), pc.memory_plan(4096)
    assert small.max_connections < large.max_connections
    assert small.shared_buffers_mib < large.shared_buffers_mib
    assert small.max_connections >= 20 and large.max_connections <= 200


def test_postgresql_conf_sizes_memory_from_the_limit():
    values = conf_values(pc.postgresql_conf(settings(memory_limit_mib=4096)))
    assert mib(values["shared_buffers"]) == 1024
    assert int(values["max_connections"]) == pc.memory_plan(4096).max_connections


def test_wal_settings_bound_the_recovery_point_and_keep_the_backup_stream_fed():
    values = conf_values(pc.postgresql_conf(settings(archive_timeout_seconds=45)))
    assert values["wal_level"] == "'replica'"
    assert values["archive_timeout"] == "45s"
    assert mib(values["wal_keep_size"]) == 1024
    assert int(values["max_wal_senders"]) >= 2
    assert int(values["max_replication_slots"]) >= 1


def test_a_stuck_backup_slot_can_never_fill_the_data_volume():
    values = conf_values(pc.postgresql_conf(settings(storage_size_gib=10)))
    assert 0 < mib(values["max_slot_wal_keep_size"]) < 10 * 1024


def test_extra_settings_cannot_silently_override_generated_ones():
    with pytest.raises(ValueError, match="wal_level"):
        pc.postgresql_conf(settings(), extra={"wal_level": "minimal"})
    assert "jit = off" in pc.postgresql_conf(settings(), extra={"jit": "off"})


def test_pg_hba_gives_each_role_only_its_own_access_and_rejects_the_rest():
    rows = [
        line.split()
        for line in pc.pg_hba_conf(settings()).splitlines()
        if line and not line.startswith("#")
    ]
    assert ["host", "hacelery", "hacelery", "all", "scram-sha-256"] in rows
    assert ["host", "replication", "pghoard", "all", "scram-sha-256"] in rows
    assert rows[-1] == ["host", "all", "all", "all", "reject"]
    assert not any(row[-1] in ("trust", "md5", "password") for row in rows)
    # The superuser never logs in over the network.
    assert not any(row[0] == "host" and row[2] == "postgres" for row in rows)


def test_init_script_reads_passwords_from_files_and_never_contains_them():
    script = pc.init_script(settings(), secrets_dir="/run/secrets/postgres")
    assert "$(cat /run/secrets/postgres/app-password)" in script
    assert "$(cat /run/secrets/postgres/backup-password)" in script
    assert "PASSWORD :'app_password'" in script
    assert re.search(r"CREATE ROLE pghoard LOGIN REPLICATION PASSWORD", script)
    assert "pg_create_physical_replication_slot('pghoard', true)" in script
    assert "ON_ERROR_STOP=1" in script


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("memory_limit_mib", 128, "memory_limit_mib: 128"),
        ("database", "Robert'); DROP", "database"),
        ("app_user", "postgres", "app_user"),
        ("archive_timeout_seconds", 5, "archive_timeout_seconds: 5"),
        ("wal_keep_size_mib", 10 * 1024, "wal_keep_size_mib"),
        ("port", 0, "port: 0"),
    ],
)
def test_bad_settings_name_the_field_and_the_value(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings(**{field: value})


def test_database_url_refuses_passwords_that_would_need_escaping():
    assert (
        pc.database_url(user="u", password="abc123", host="h", port=5432, database="d")
        == "postgresql://u:abc123@h:5432/d"
    )
    with pytest.raises(ValueError, match="letters and digits"):
        pc.database_url(user="u", password="a@b", host="h", port=5432, database="d")


TLS = pc.ServerTls(certificate_file="/tls/tls.crt", key_file="/tls/tls.key", ca_file="/tls/ca.crt")


def test_with_tls_the_server_takes_network_clients_over_tls_only() -> None:
    values = conf_values(pc.postgresql_conf(settings(tls=TLS)))
    assert values["ssl"] == "on"
    assert values["ssl_cert_file"] == "'/tls/tls.crt'"
    assert values["ssl_key_file"] == "'/tls/tls.key'"
    assert values["ssl_min_protocol_version"] == "'TLSv1.3'"
    rows = [line.split() for line in pc.pg_hba_conf(settings(tls=TLS)).splitlines()[1:]]
    network = [row for row in rows if row[0] != "local"]
    # Plain TCP is refused first; the app and the backup role match only over TLS.
    assert network[0] == ["hostnossl", "all", "all", "all", "reject"]
    assert ["hostssl", "hacelery", "hacelery", "all", "scram-sha-256"] in network
    assert ["hostssl", "replication", "pghoard", "all", "scram-sha-256"] in network
    assert not any(row[0] == "host" and row[-1] != "reject" for row in network)


def test_without_tls_nothing_mentions_ssl() -> None:
    assert "ssl" not in pc.postgresql_conf(settings())
    assert "hostssl" not in pc.pg_hba_conf(settings())


def test_clients_verify_the_server_name_against_the_stack_ca() -> None:
    url = pc.database_url(user="u", password="p1", host="postgres.ns.svc", port=5432,
                          database="d", ca_file="/tls/ca.crt")
    assert url == ("postgresql://u:p1@postgres.ns.svc:5432/d?sslmode=verify-full"
                   "&sslrootcert=/tls/ca.crt")


@pytest.mark.parametrize("field, value", [("certificate_file", "tls.crt"), ("ca_file", "/a'b")])
def test_a_relative_or_quoted_certificate_path_is_refused(field: str, value: str) -> None:
    paths = {"certificate_file": "/c", "key_file": "/k", "ca_file": "/a"} | {field: value}
    with pytest.raises(ValueError, match=f"ServerTls.{field}"):
        pc.ServerTls(**paths)
