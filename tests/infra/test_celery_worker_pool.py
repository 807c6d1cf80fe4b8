"""Worker pool builders, without mocks: shutdown, liveness, credentials, autoscaling, hardening."""

from __future__ import annotations

import pytest

from infra.celery import (
    ContainerResources,
    CpuAutoscalingArgs,
    QueueAutoscalingArgs,
    SecretKeyRef,
    WorkerPoolArgs,
    cpu_autoscaler_args,
    pod_disruption_budget_args,
    scaled_object_spec,
    soft_shutdown_timeout_seconds,
    trigger_authentication_spec,
    worker_command,
    worker_container,
    worker_deployment_args,
    worker_egress,
    worker_labels,
    worker_network_policy_args,
    worker_selector,
)
from infra.validation import ArgsError
from tests.infra.test_celery_mock_harness import (
    assert_resources,
    assert_restricted,
    assert_secrets_by_reference,
    assert_tmp_is_empty_dir,
    env_of,
    runtime,
)


def pool(**overrides) -> WorkerPoolArgs:
    values = {"runtime": runtime(), "queue": "small", "concurrency": 4}
    values.update(overrides)
    return WorkerPoolArgs(**values)


def keda(**overrides) -> QueueAutoscalingArgs:
    return QueueAutoscalingArgs(queue_monitor_secret_name="rabbitmq-queue-monitor", **overrides)


def pod_spec(args: WorkerPoolArgs):
    return worker_deployment_args("worker-small", args).spec.template.spec


# ---------------------------------------------------------------- the worker process and shutdown


def test_worker_runs_in_exec_form_so_it_receives_sigterm():
    container = worker_container(pool())
    assert container.command[0] == "celery"
    assert container.args is None
    assert not any(word in {"sh", "bash", "-c"} for word in container.command)


def test_worker_pods_bring_the_schema_up_to_date_before_starting():
    (migrate,) = pod_spec(pool()).init_containers
    assert migrate.command == ["python", "-m", "app.migrate"]
    assert migrate.image == worker_container(pool()).image


def test_worker_command_consumes_its_own_queue_with_its_concurrency():
    command = worker_command(pool(queue="large", concurrency=3))
    assert command[:4] == ["celery", "--app", "app.celery_app", "worker"]
    assert command[command.index("--queues") + 1] == "large"
    assert command[command.index("--concurrency") + 1] == "3"
    assert command[command.index("--hostname") + 1] == "large@%h"


def test_prefetch_is_one_by_default_and_raised_per_pool():
    # Long-task pools must not hold messages behind a running task; short-task pools may.
    default = worker_command(pool())
    assert default[default.index("--prefetch-multiplier") + 1] == "1"
    short = worker_command(pool(queue="small", prefetch_multiplier=16))
    assert short[short.index("--prefetch-multiplier") + 1] == "16"


def test_prefetch_multiplier_is_bounded():
    with pytest.raises(ArgsError, match="prefetch_multiplier"):
        pool(prefetch_multiplier=0)


def test_worker_resumes_after_a_broker_failover_without_waiting_for_other_workers():
    # Mingle waits ~1 s for replies at every reconnect, gossip re-declares a queue per worker:
    # both only delay the first task on the next broker node (see the failover drill).
    command = worker_command(pool())
    assert "--without-mingle" in command
    assert "--without-gossip" in command
    # Task events stay on: Flower needs them.
    assert "--without-heartbeat" not in command


@pytest.mark.parametrize("grace", [15, 30, 60, 300, 1801, 3600])
def test_soft_shutdown_ends_before_kubernetes_kills_the_pod(grace):
    args = pool(termination_grace_period_seconds=grace)
    env = env_of(worker_container(args))
    soft = float(env["CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"].value)
    assert 0 < soft < grace
    # Room for the cold shutdown (requeue, close) after the soft one: at least 5 s.
    assert grace - soft >= 5
    # ... but "just below": the tasks get nearly the whole grace period.
    assert soft >= grace * 0.66
    template = worker_deployment_args("w", args).spec.template
    assert template.spec.termination_grace_period_seconds == grace


def test_soft_shutdown_is_derived_from_the_grace_period():
    assert soft_shutdown_timeout_seconds(3600) > soft_shutdown_timeout_seconds(300)
    assert soft_shutdown_timeout_seconds(300) == 270


def test_sigterm_starts_celerys_soft_shutdown():
    env = env_of(worker_container(pool()))
    assert env["REMAP_SIGTERM"].value == "SIGQUIT"


def test_long_task_pool_gets_its_own_long_grace_period():
    small = pod_spec(pool(queue="small", termination_grace_period_seconds=120))
    large = pod_spec(pool(queue="large", termination_grace_period_seconds=3600))
    assert small.termination_grace_period_seconds == 120
    assert large.termination_grace_period_seconds == 3600


@pytest.mark.parametrize("grace", [5, 14, 3601, 86400])
def test_grace_period_outside_what_celery_and_the_app_accept_is_refused(grace):
    with pytest.raises(ArgsError, match="termination_grace_period_seconds"):
        pool(termination_grace_period_seconds=grace)


def test_soft_shutdown_value_is_what_the_app_accepts():
    from app.settings import AppSettings

    env = env_of(worker_container(pool(termination_grace_period_seconds=3600)))
    raw = env["CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"].value
    settings = AppSettings.from_environ({"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": raw})
    assert settings.soft_shutdown_timeout == float(raw) == 3570


# ---------------------------------------------------------------- liveness


def test_liveness_reads_the_heartbeat_file_not_the_broker():
    container = worker_container(pool(heartbeat_max_age_seconds=90))
    probe = container.liveness_probe
    assert probe.http_get is None and probe.tcp_socket is None
    command = probe.exec_.command
    assert command[:4] == ["python", "-m", "app.healthcheck", "worker"]
    assert command[command.index("--max-age") + 1] == "90"
    assert not {"inspect", "ping", "status"} & set(command)
    heartbeat = env_of(container)["CELERY_HEARTBEAT_FILE"].value
    assert heartbeat.startswith("/tmp/")


def test_liveness_tolerates_a_busy_worker_for_longer_than_the_heartbeat_age():
    probe = worker_container(pool(heartbeat_max_age_seconds=60)).liveness_probe
    assert probe.period_seconds * probe.failure_threshold > 60


def test_startup_probe_holds_liveness_off_during_a_slow_start():
    container = worker_container(pool())
    startup = container.startup_probe
    assert startup.exec_.command == container.liveness_probe.exec_.command
    assert startup.period_seconds * startup.failure_threshold >= 300


def test_workers_have_no_readiness_probe_to_fail_during_a_broker_failover():
    assert worker_container(pool()).readiness_probe is None


# ---------------------------------------------------------------- credentials and hardening


def test_broker_and_database_come_from_secrets_by_reference():
    container = worker_container(pool())
    env = env_of(container)
    broker = env["CELERY_BROKER_URL"]
    assert broker.value is None
    assert broker.value_from.secret_key_ref.name == "rabbitmq-app-user"
    assert broker.value_from.secret_key_ref.key == "broker-url"
    database = env["DATABASE_URL"].value_from.secret_key_ref
    assert (database.name, database.key) == ("postgres-app-user", "database-url")
    assert_secrets_by_reference(pod_spec(pool()))


def test_a_password_in_plain_settings_is_refused():
    with pytest.raises(ArgsError, match="Secret"):
        runtime(settings={"RESULT_BACKEND": "redis://user:hunter2@redis:6379/0"})


def test_platform_managed_variables_cannot_be_overridden_by_settings():
    with pytest.raises(ArgsError, match="CELERY_BROKER_URL"):
        runtime(settings={"CELERY_BROKER_URL": "amqp://rabbitmq"})


def test_secret_reference_names_are_validated():
    with pytest.raises(ArgsError, match=r"SecretKeyRef\.name"):
        SecretKeyRef(name="Not_A_Secret", key="url")


def test_worker_pod_is_restricted_and_has_resources():
    spec = pod_spec(pool())
    assert_restricted(spec)
    assert_resources(spec)
    assert spec.automount_service_account_token is False


def test_tmp_is_an_empty_dir_under_a_read_only_root():
    spec = pod_spec(pool())
    assert_tmp_is_empty_dir(spec)
    assert worker_container(pool()).security_context.read_only_root_filesystem is True


def test_resources_come_from_args():
    resources = ContainerResources(cpu_request="2", memory_request="3Gi", memory_limit="4Gi")
    container = worker_container(pool(resources=resources))
    assert container.resources.requests == {"cpu": "2", "memory": "3Gi"}
    assert container.resources.limits == {"memory": "4Gi"}


def test_memory_limit_below_request_is_refused():
    with pytest.raises(ArgsError, match="memory_limit"):
        ContainerResources(memory_request="1Gi", memory_limit="512Mi")


def test_bad_quantity_names_the_field():
    with pytest.raises(ArgsError, match="cpu_request"):
        ContainerResources(cpu_request="two cores")


def test_unpinned_image_is_refused():
    with pytest.raises(ArgsError, match="image"):
        runtime(image="ghcr.io/example/app:latest")


def test_workers_accept_no_ingress_and_reach_only_dns_broker_database_and_configured_blocks():
    from dataclasses import replace

    from infra.network_policy import KUBE_DNS, ExternalEgress, Peer, tcp

    broker = Peer(purpose="broker", pod_labels={"app": "rabbitmq"}, ports=(tcp(5672),))
    database = Peer(purpose="database", pod_labels={"app": "postgres"}, ports=(tcp(5432),))
    runtime = replace(pool().runtime, broker_peer=broker, database_peer=database)
    api = ExternalEgress(cidr="203.0.113.0/24", ports=(443,))
    args = pool(runtime=runtime, allowed_egress=(api,))
    policy = worker_network_policy_args("worker-small", args).spec
    assert set(policy.policy_types) == {"Ingress", "Egress"}
    assert policy.ingress == []
    assert policy.pod_selector.match_labels == worker_selector("worker-small")
    assert worker_egress(args) == (KUBE_DNS, broker, database, api.peer())
    assert len(policy.egress) == 4
    # Without the platform's wiring a worker may resolve names and nothing else.
    assert worker_egress(pool()) == (KUBE_DNS,)


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "169.254.169.254/32", "example.com", "0.0.0.0/99"])
def test_an_egress_block_inside_the_cluster_or_not_a_block_is_refused(cidr):
    from infra.network_policy import ExternalEgress
    from infra.validation import ArgsError

    with pytest.raises(ArgsError, match=r"ExternalEgress\.cidr"):
        ExternalEgress(cidr=cidr)


# ---------------------------------------------------------------- replicas and disruption


def test_deployment_leaves_replicas_to_the_autoscaler():
    assert worker_deployment_args("w", pool()).spec.replicas is None


def test_selector_matches_the_pod_template():
    deployment = worker_deployment_args("worker-small", pool())
    selector = deployment.spec.selector.match_labels
    template_labels = deployment.spec.template.metadata.labels
    assert selector.items() <= template_labels.items()
    assert worker_labels("worker-small").items() >= selector.items()


def test_rollout_never_lowers_capacity():
    strategy = worker_deployment_args("w", pool()).spec.strategy
    assert strategy.rolling_update.max_unavailable == 0


def test_disruption_budget_lets_one_worker_go_at_a_time():
    budget = pod_disruption_budget_args(
        "worker-small", "ha-celery", worker_labels("worker-small"), worker_selector("worker-small")
    ).spec
    assert budget.max_unavailable == 1
    assert budget.min_available is None
    assert budget.selector.match_labels == worker_selector("worker-small")


# ---------------------------------------------------------------- KEDA on queue depth


def test_scaler_counts_ready_plus_unacknowledged_messages():
    spec = scaled_object_spec("worker-small", pool(autoscaling=keda()), "worker-small-keda-auth")
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    # Over AMQP KEDA only sees ready messages; the management API's total includes unacked.
    assert trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"]["excludeUnacknowledged"] == "false"
    assert trigger["metadata"]["queueName"] == "small"


def test_scaler_reads_the_management_url_from_a_secret():
    spec = scaled_object_spec("worker-small", pool(autoscaling=keda()), "worker-small-keda-auth")
    (trigger,) = spec["triggers"]
    assert "host" not in trigger["metadata"]
    assert "hostFromEnv" not in trigger["metadata"]
    assert trigger["authenticationRef"] == {"name": "worker-small-keda-auth",
                                            "kind": "ClusterTriggerAuthentication"}
    auth = trigger_authentication_spec(keda(queue_monitor_secret_key="management-url"))
    assert auth == {
        "secretTargetRef": [
            {"parameter": "host", "name": "rabbitmq-queue-monitor", "key": "management-url"}
        ]
    }


def test_scaler_bounds_target_and_cooldown_come_from_args():
    args = pool(
        autoscaling=keda(messages_per_replica=25, polling_interval_seconds=20),
        min_replicas=0,
        max_replicas=40,
        cooldown_seconds=600,
    )
    spec = scaled_object_spec("worker-large", args, "auth")
    assert spec["scaleTargetRef"]["name"] == "worker-large"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 40)
    assert spec["cooldownPeriod"] == 600
    assert spec["pollingInterval"] == 20
    assert spec["triggers"][0]["metadata"]["value"] == "25"
    scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] == 600


def test_target_defaults_to_the_pools_concurrency():
    spec = scaled_object_spec("w", pool(concurrency=6, autoscaling=keda()), "auth")
    assert spec["triggers"][0]["metadata"]["value"] == "6"


def test_scale_down_removes_one_replica_at_a_time():
    spec = scaled_object_spec("w", pool(autoscaling=keda()), "auth")
    scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert scale_down["selectPolicy"] == "Min"


def test_cooldown_beyond_the_hpa_maximum_is_refused():
    with pytest.raises(ArgsError, match="cooldown_seconds"):
        pool(autoscaling=keda(), cooldown_seconds=7200)


def test_scale_to_zero_needs_keda():
    assert pool(autoscaling=keda(), min_replicas=0).min_replicas == 0
    with pytest.raises(ArgsError, match="min_replicas"):
        pool(autoscaling=CpuAutoscalingArgs(), min_replicas=0)


def test_max_below_min_is_refused():
    with pytest.raises(ArgsError, match="max_replicas"):
        pool(min_replicas=5, max_replicas=2)


# ---------------------------------------------------------------- CPU fallback


def test_cpu_fallback_is_an_autoscaling_v2_hpa_on_the_deployment():
    args = pool(
        autoscaling=CpuAutoscalingArgs(target_cpu_utilization_percent=60),
        min_replicas=2,
        max_replicas=8,
        cooldown_seconds=120,
    )
    hpa = cpu_autoscaler_args("worker-small", args).spec
    assert (hpa.scale_target_ref.kind, hpa.scale_target_ref.name) == ("Deployment", "worker-small")
    assert (hpa.min_replicas, hpa.max_replicas) == (2, 8)
    (metric,) = hpa.metrics
    assert metric.resource.name == "cpu"
    assert metric.resource.target.average_utilization == 60
    assert hpa.behavior.scale_down.stabilization_window_seconds == 120
    assert [p.value for p in hpa.behavior.scale_down.policies] == [1]
