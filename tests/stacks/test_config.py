"""Stack config parsing: good values become Args, bad ones name the key, the value and the fix."""

from __future__ import annotations

import pytest

from stacks import plan as plan_engine
from stacks.config import ConfigError, parse

GCP = {
    "gcp_project": "ha-celery-test",
    "gcp_region": "europe-west1",
    "zones": ["europe-west1-b", "europe-west1-c", "europe-west1-d"],
}


def problems_of(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(values, "test")
    return caught.value.problems


def test_minimal_gcp_stack_gets_component_defaults():
    config = parse(GCP, "test")
    assert config.on_gcp
    assert config.gke.release_channel == "REGULAR"
    assert config.gke.deletion_protection is True  # safe by default; dev opts out
    assert [pool.name for pool in config.gke.node_pools] == ["general"]
    assert config.dns is None


def test_settings_left_out_are_not_passed_so_args_defaults_apply():
    config = parse(
        {**GCP, "cluster": {"nodePools": [{"name": "big", "machineType": "n2-standard-8"}]}}, "test"
    )
    pool = config.gke.node_pools[0]
    assert (pool.name, pool.machine_type, pool.min_nodes_per_zone) == ("big", "n2-standard-8", 1)


def test_malformed_region_names_gcp_region():
    [problem] = problems_of({**GCP, "gcp_region": "europe-west", "zones": ["europe-west-b"]})
    assert problem.startswith("gcp:region: got 'europe-west'")
    assert "europe-west1" in problem


def test_negative_node_count_names_the_pool_key():
    [problem] = problems_of(
        {**GCP, "cluster": {"nodePools": [{"name": "general", "minNodesPerZone": -1}]}}
    )
    assert problem.startswith("ha-celery:cluster.nodePools[0].minNodesPerZone: got -1")


def test_max_below_min_nodes_is_refused():
    [problem] = problems_of(
        {
            **GCP,
            "cluster": {
                "nodePools": [{"name": "general", "minNodesPerZone": 3, "maxNodesPerZone": 2}]
            },
        }
    )
    assert "maxNodesPerZone" in problem and "at least min_nodes_per_zone (3)" in problem


def test_record_outside_the_zone_names_the_record_key():
    [problem] = problems_of(
        {
            **GCP,
            "dns": {
                "domain": "celery.example.com.",
                "records": [{"name": "www.example.org.", "type": "A", "rrdatas": ["192.0.2.1"]}],
            },
        }
    )
    assert problem.startswith("ha-celery:dns.records[0].name: got 'www.example.org.'")
    assert "inside the zone 'celery.example.com.'" in problem


def test_domain_without_trailing_dot_is_refused_with_the_fix():
    [problem] = problems_of({**GCP, "dns": {"domain": "celery.example.com"}})
    assert problem.startswith("ha-celery:dns.domain")
    assert "ending with a dot" in problem


def test_zone_of_another_region_is_refused():
    [problem] = problems_of({**GCP, "zones": ["us-central1-a"]})
    assert problem.startswith("ha-celery:zones: got 'us-central1-a'")


def test_overlapping_ranges_are_refused():
    [problem] = problems_of({**GCP, "cluster": {"podsCidr": "10.10.0.0/16"}})
    assert "podsCidr" in problem and "does not overlap" in problem


def test_unknown_keys_are_reported_not_ignored():
    [problem] = problems_of({**GCP, "cluster": {"releaseChanel": "STABLE"}})
    assert problem.startswith("ha-celery:cluster.releaseChanel: unknown setting")


def test_every_problem_is_reported_in_one_run():
    problems = problems_of(
        {**GCP, "kubernetesVersion": "1.99", "cluster": {"releaseChannel": "FAST"}}
    )
    assert len(problems) == 2
    assert any(p.startswith("ha-celery:cluster.releaseChannel: got 'FAST'") for p in problems)


def test_bad_kubernetes_version_lists_supported_ones():
    [problem] = problems_of({**GCP, "kubernetesVersion": "1.99"})
    assert problem.startswith("ha-celery:kubernetesVersion: got '1.99'") and "1.33" in problem


def test_gcp_stack_requires_project_region_and_zones():
    problems = problems_of({"platform": "gcp"})
    assert {p.split(":", 2)[0] + ":" + p.split(":", 2)[1] for p in problems} == {
        "gcp:project",
        "gcp:region",
        "ha-celery:zones",
    }


LOCAL = {
    "platform": "local",
    "image": {"ref": "ha-celery/app:1.0"},
    "backup": {"image": {"ref": "ha-celery/pghoard:1.0"}},
}


def test_local_stack_refuses_gcp_settings():
    [problem] = problems_of({**LOCAL, "dns": {"domain": "a.example."}})
    assert problem.startswith("ha-celery:dns") and "local stack creates no GCP" in problem


def test_local_stack_takes_the_kube_context():
    config = parse({**LOCAL, "local": {"kubeContext": "kind-x"}}, "local")
    assert (config.on_gcp, config.gke, config.kube_context) == (False, None, "kind-x")


def test_config_errors_stop_the_plan_before_any_resource(monkeypatch):
    from stacks import platform

    built = []
    monkeypatch.setattr(platform, "build", lambda config: built.append(config) or {})
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("prod", overrides={"gcp:region": "europe-west"})
    assert built == []
    assert "gcp:region" in str(caught.value)


def test_unknown_top_level_key_in_stack_file_is_reported():
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("dev", overrides={"ha-celery:clustr": {}})
    assert caught.value.problems[0].startswith("ha-celery:clustr: unknown setting")


# --- workload sections ------------------------------------------------------------------------


def test_gcp_stack_builds_images_by_default_and_local_needs_pinned_refs():
    config = parse(GCP, "test")
    assert config.workloads.app_image.build.dockerfile_path == "app/Dockerfile"
    assert config.workloads.pghoard_image.build.dockerfile_path == "pghoard/Dockerfile"
    problems = problems_of({"platform": "local"})
    assert [p.split(":")[1] for p in problems] == ["image.ref", "backup.image.ref"]


def test_every_app_queue_gets_a_worker_pool_by_default():
    config = parse(GCP, "test")
    assert sorted(config.workloads.workers) == ["default", "large", "small"]


def test_a_queue_without_a_pool_is_refused():
    problems = problems_of({**GCP, "workers": {"small": {}, "large": {}}})
    assert problems == [
        "ha-celery:workers: got ['large', 'small']; expected a pool for every queue the app "
        "routes to (default, small, large); 'default' is missing, so its tasks would never run"
    ]


def test_worker_settings_are_checked_against_the_pool_args():
    problems = problems_of(
        {**GCP, "workers": {"default": {}, "large": {}, "small": {"concurency": 4}}}
    )
    assert problems[0].startswith(
        "ha-celery:workers.small.concurency: unknown setting; allowed: concurrency,"
    )


def test_nested_worker_resources_are_validated():
    [problem] = problems_of(
        {
            **GCP,
            "workers": {
                "default": {},
                "large": {},
                "small": {"resources": {"memoryRequest": "2Gi", "memoryLimit": "1Gi"}},
            },
        }
    )
    assert problem.startswith("ha-celery:workers.small.resources")
    assert "memory_request (2Gi)" in problem


def test_even_rabbitmq_replica_count_is_refused():
    [problem] = problems_of({**GCP, "rabbitmq": {"replicas": 4}})
    assert problem == "ha-celery:rabbitmq.replicas: got 4; expected an odd number: 1, 3, 5 or 7"


def test_wrong_types_are_named_with_their_key():
    [problem] = problems_of({**GCP, "postgres": {"memoryMib": "lots"}})
    assert problem.startswith("ha-celery:postgres.memoryMib: got 'lots'; expected a valid integer")


def test_keda_on_by_default_scales_on_queue_depth_and_off_falls_back_to_cpu():
    from infra.celery import CpuAutoscalingArgs, QueueAutoscalingArgs

    on = parse(GCP, "test").workloads
    assert all(isinstance(p.autoscaling, QueueAutoscalingArgs) for p in on.workers.values())
    assert on.rabbitmq.management_client_namespaces == ("keda",)
    off = parse({**GCP, "keda": {"enabled": False}}, "test").workloads
    assert off.keda is None
    assert all(isinstance(p.autoscaling, CpuAutoscalingArgs) for p in off.workers.values())


def test_messages_per_replica_reaches_the_scaler():
    config = parse(
        {**GCP, "workers": {"default": {}, "large": {}, "small": {"messagesPerReplica": 40}}},
        "test",
    )
    assert config.workloads.workers["small"].autoscaling.messages_per_replica == 40


def test_protection_is_one_switch_on_by_default():
    prod = parse(GCP, "prod")
    assert prod.protect is True
    assert prod.gke.protect is True and prod.gke.deletion_protection is True
    assert prod.dns is None or prod.dns.protect is True
    workloads = prod.workloads
    assert workloads.rabbitmq.protect and workloads.postgres.protect and workloads.backup.protect
    assert workloads.backup.storage.deletion_protection is True
    # ... and never deletes backups with the stack unless asked to.
    assert workloads.backup.storage.delete_with_stack is False

    dev = parse({**GCP, "protect": False, "dns": {"domain": "example.com."}}, "dev")
    assert (dev.protect, dev.gke.protect, dev.gke.deletion_protection, dev.dns.protect) == (
        False, False, False, False)
    assert not (dev.workloads.rabbitmq.protect or dev.workloads.postgres.protect
                or dev.workloads.backup.protect)
    assert dev.workloads.backup.storage.deletion_protection is False
    assert dev.workloads.backup.storage.bucket_name == "ha-celery-test-dev-pghoard"


def test_the_clusters_own_deletion_protection_may_differ_from_protect():
    config = parse({**GCP, "protect": False, "cluster": {"deletionProtection": True}}, "x")
    assert config.gke.deletion_protection is True and config.gke.protect is False


def test_backups_are_deleted_with_the_stack_only_when_asked():
    config = parse({**GCP, "backup": {"storage": {"deleteWithStack": True}}}, "dev")
    assert config.workloads.backup.storage.delete_with_stack is True
    [problem] = problems_of({**GCP, "backup": {"storage": {"deleteWithStack": "sometimes"}}})
    assert problem.startswith("ha-celery:backup.storage.deleteWithStack: got 'sometimes'")


def test_protect_must_be_a_boolean():
    [problem] = problems_of({**GCP, "protect": "perhaps"})
    assert problem.startswith("ha-celery:protect: got 'perhaps'; expected a valid boolean")


def test_app_settings_accept_yaml_numbers_and_refuse_credentials():
    config = parse({**GCP, "app": {"LCS_LARGE_THRESHOLD": 5000}}, "test")
    assert config.workloads.web.runtime.settings == {"LCS_LARGE_THRESHOLD": "5000"}
    [problem] = problems_of({**GCP, "app": {"EXTRA_URL": "postgresql://u:secret@db/x"}})
    assert problem.startswith("ha-celery:app.settings") and "secret" not in problem


def test_app_secrets_names_are_validated_and_values_stay_secret():
    from pulumi.runtime import rpc

    plan = plan_engine.evaluate("dev", overrides={
        "ha-celery:appSecrets": {"API_TOKEN": {"secure": "v1:abc"}}})
    [secret] = [r for r in plan.resources if r.type == "kubernetes:core/v1:Secret"
                and r.name == "app-secrets-secret"]
    assert rpc.is_rpc_secret(secret.inputs["stringData"])
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("dev", overrides={"ha-celery:appSecrets": {"bad-name": "x"}})
    assert caught.value.problems[0].startswith("ha-celery:app.secretSettings")


def test_app_secrets_must_be_a_mapping():
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("dev", overrides={"ha-celery:appSecrets": ["x"]})
    assert caught.value.problems[0].startswith("ha-celery:appSecrets: expected a mapping")
