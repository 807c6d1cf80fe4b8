"""PostgresDatabase's pure builders: pod, probes, security, storage, Service, NetworkPolicy."""

from __future__ import annotations

import pytest

from infra import names
from infra import postgres as pg
from infra.validation import ArgsError


def args(**overrides) -> pg.PostgresArgs:
    values = {
        "namespace": "ha-celery",
        "storage_class": "premium-rwo",
        "storage_size_gib": 50,
        "memory_mib": 4096,
    }
    values.update(overrides)
    return pg.PostgresArgs(**values)


def spec(a: pg.PostgresArgs | None = None):
    return pg.statefulset_spec(
        "db",
        a or args(),
        service_name="db",
        config_map_name="db-config",
        credentials_secret_name="db-credentials",
    )


def container(a=None):
    return spec(a).template.spec.containers[0]


def test_image_is_the_pinned_official_postgres_17():
    assert pg.PostgresArgs(namespace="n").image.startswith("postgres:17.")
    assert args().major_version == 17
    with pytest.raises(ArgsError, match=r"PostgresArgs\.image"):
        args(image="postgres:latest")
    with pytest.raises(ArgsError, match=r"PostgresArgs\.image"):
        args(image="postgres")


def test_memory_request_equals_limit_and_cpu_is_not_limited():
    resources = container().resources
    assert resources.requests["memory"] == resources.limits["memory"] == "4096Mi"
    assert "cpu" not in resources.limits


def test_volume_claim_uses_the_given_class_and_size_and_is_retained():
    s = spec()
    (claim,) = s.volume_claim_templates
    assert claim.spec.storage_class_name == "premium-rwo"
    assert claim.spec.resources.requests == {"storage": "50Gi"}
    assert claim.spec.access_modes == ["ReadWriteOnce"]
    assert s.persistent_volume_claim_retention_policy.when_deleted == "Retain"
    assert s.replicas == 1


def test_probes_use_pg_isready():
    c = container()
    for probe in (c.startup_probe, c.readiness_probe, c.liveness_probe):
        assert probe.exec_.command[0] == "pg_isready"
    assert c.startup_probe.failure_threshold * c.startup_probe.period_seconds >= 600


def test_pre_stop_is_a_fast_shutdown_within_the_grace_period():
    c = container()
    command = c.lifecycle.pre_stop.exec_.command
    assert command[:2] == ["pg_ctl", "stop"] and "--mode=fast" in command
    timeout = int(next(part for part in command if part.startswith("--timeout=")).split("=")[1])
    assert timeout < spec().template.spec.termination_grace_period_seconds


def test_pod_runs_restricted_as_uid_999():
    pod = spec().template.spec
    assert pod.security_context.run_as_user == 999
    assert pod.security_context.run_as_non_root is True
    sc = container().security_context
    assert sc.run_as_user == 999
    assert sc.allow_privilege_escalation is False
    assert sc.capabilities.drop == ["ALL"]
    assert sc.read_only_root_filesystem is True
    assert pod.automount_service_account_token is False


def test_passwords_reach_the_server_as_files_never_as_values():
    c = container()
    env = {e.name: e for e in c.env}
    assert env["POSTGRES_PASSWORD_FILE"].value.startswith(pg.SECRETS_DIR)
    assert "POSTGRES_PASSWORD" not in env
    mounts = {m.name: m for m in c.volume_mounts}
    assert mounts["credentials"].mount_path == pg.SECRETS_DIR and mounts["credentials"].read_only
    volumes = {v.name: v for v in spec().template.spec.volumes}
    assert volumes["credentials"].secret.secret_name == "db-credentials"
    assert volumes["credentials"].secret.default_mode == 0o440


def test_server_runs_the_generated_config_files():
    c = container()
    assert f"config_file={pg.CONFIG_DIR}/postgresql.conf" in c.args
    assert f"hba_file={pg.CONFIG_DIR}/pg_hba.conf" in c.args
    files = pg.config_files(args())
    assert "shared_buffers = 1024MB" in files["postgresql.conf"]
    assert "CREATE ROLE" in files["10-roles.sh"]


def test_a_config_change_changes_the_pod_template():
    before = spec(args()).template.metadata.annotations
    after = spec(args(archive_timeout_seconds=30)).template.metadata.annotations
    assert before != after


def test_network_policy_admits_only_platform_pods_on_the_postgres_port():
    policy = pg.network_policy_spec("db")
    assert policy.pod_selector.match_labels == names.selector_labels("postgres", "db")
    assert policy.policy_types == ["Ingress", "Egress"]
    assert policy.egress == []  # PostgreSQL only answers
    (rule,) = policy.ingress
    (peer,) = rule.from_
    assert peer.pod_selector.match_labels == names.platform_pod_selector()
    assert peer.namespace_selector is None
    assert [p.port for p in rule.ports] == [5432]


def test_pod_labels_are_matched_by_the_service_and_the_platform_selector():
    pod_labels = spec().template.metadata.labels
    for key, value in pg.service_spec("db").selector.items():
        assert pod_labels[key] == value
    for key, value in names.platform_pod_selector().items():
        assert pod_labels[key] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_mib", 100),
        ("storage_size_gib", 0),
        ("cpu_millicores", 10),
        ("storage_class", "Not A Class"),
    ],
)
def test_bad_args_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"PostgresArgs.{field}"):
        args(**{field: value})
