"""The pure RabbitMQ builders: each production property has a test that fails without it."""

from __future__ import annotations

import dataclasses

import pytest

from infra import names as label_names
from infra import rabbitmq
from infra.network_policy import MetricsScraper
from infra.rabbitmq import ObjectNames, RabbitMQClusterArgs
from infra.validation import ArgsError

NAMES = ObjectNames("rabbitmq")
ARGS = RabbitMQClusterArgs(namespace="ha-celery", zones=("europe-west1-b", "europe-west1-c",
                                                         "europe-west1-d"),
                           storage_class="premium-rwo", storage_size="50Gi")
POD_SELECTOR = {label_names.NAME: "rabbitmq", label_names.INSTANCE: "rabbitmq"}


@pytest.fixture(scope="module")
def spec():
    return rabbitmq.statefulset_spec(NAMES, ARGS, "abc123")


@pytest.fixture(scope="module")
def pod(spec):
    return spec.template.spec


@pytest.fixture(scope="module")
def server(pod):
    [container] = pod.containers
    return container


# ------------------------------------------------------------------------------ scheduling


def test_rabbitmq_pods_never_share_a_node(pod):
    [term] = pod.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
    assert term.topology_key == "kubernetes.io/hostname"
    assert term.label_selector.match_labels == POD_SELECTOR
    assert pod.affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution \
        is None


def test_pods_spread_over_the_stacks_zones(pod):
    [spread] = pod.topology_spread_constraints
    assert (spread.topology_key, spread.max_skew, spread.when_unsatisfiable, spread.min_domains) \
        == ("topology.kubernetes.io/zone", 1, "DoNotSchedule", 3)
    assert spread.label_selector.match_labels == POD_SELECTOR
    [term] = pod.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
        .node_selector_terms
    assert term.match_expressions[0].values == list(ARGS.zones)


def test_no_zone_rules_without_zones():
    pod = rabbitmq.statefulset_spec(NAMES, RabbitMQClusterArgs(namespace="ha-celery")).template.spec
    assert pod.topology_spread_constraints is None
    assert pod.affinity.node_affinity is None
    assert pod.affinity.pod_anti_affinity is not None


def test_pods_start_in_parallel_behind_the_headless_service(spec):
    assert spec.pod_management_policy == "Parallel"
    assert spec.replicas == 3
    assert spec.service_name == "rabbitmq-nodes"
    assert spec.selector.match_labels == POD_SELECTOR
    assert POD_SELECTOR.items() <= spec.template.metadata.labels.items()


def test_config_checksum_annotation_rolls_pods_on_config_change(spec):
    assert spec.template.metadata.annotations == {"hacelery.io/config-checksum": "abc123"}
    data = rabbitmq.config_map_data(NAMES, ARGS)
    changed = rabbitmq.config_map_data(NAMES, RabbitMQClusterArgs(namespace="ha-celery",
                                                                  delivery_limit=5,
                                                                  memory="4Gi"))
    assert rabbitmq.config_checksum(data) != rabbitmq.config_checksum(changed)


# --------------------------------------------------------------------------------- storage


def test_each_pod_gets_a_pvc_of_the_stacks_class_and_size(spec):
    [claim] = spec.volume_claim_templates
    assert claim.metadata.name == "data"
    assert claim.spec.storage_class_name == "premium-rwo"
    assert claim.spec.resources.requests == {"storage": "50Gi"}
    assert claim.spec.access_modes == ["ReadWriteOnce"]


def test_default_storage_class_is_left_to_the_cluster():
    claim = rabbitmq.volume_claim_template(RabbitMQClusterArgs(namespace="ha-celery"))
    assert claim.spec.storage_class_name is None


def test_volumes_are_kept_when_the_statefulset_is_deleted_or_scaled(spec):
    policy = spec.persistent_volume_claim_retention_policy
    assert (policy.when_deleted, policy.when_scaled) == ("Retain", "Retain")


def test_data_volume_is_mounted_at_rabbitmqs_home(server):
    mounts = {mount.name: mount for mount in server.volume_mounts}
    assert mounts["data"].mount_path == "/var/lib/rabbitmq"
    assert mounts["config"].read_only and mounts["server-secret"].read_only


# ------------------------------------------------------------------------------- resources


def test_memory_request_equals_limit_and_watermark_is_below_it(server):
    resources = server.resources
    assert resources.requests["memory"] == resources.limits["memory"] == "2Gi"
    conf = rabbitmq.config_map_data(NAMES, ARGS)["rabbitmq.conf"]
    watermark = int(conf.split("vm_memory_high_watermark.absolute = ")[1].split()[0])
    assert 0 < watermark < rabbitmq.quantity_bytes("2Gi")


def test_cpu_limit_only_when_asked(server):
    assert "cpu" not in server.resources.limits
    limited = rabbitmq.container(NAMES, RabbitMQClusterArgs(namespace="ha-celery",
                                                            cpu_limit="2"))
    assert limited.resources.limits["cpu"] == "2"


def test_file_descriptor_limit_is_raised_by_the_entrypoint(server):
    assert server.command == ["/bin/bash", "/etc/rabbitmq/config/entrypoint.sh"]
    entrypoint = rabbitmq.config_map_data(NAMES, ARGS)["entrypoint.sh"]
    assert "wanted=65536" in entrypoint


# ---------------------------------------------------------------------------------- probes


def test_startup_probe_proves_the_node_joined_a_full_cluster(server):
    probe = server.startup_probe
    assert probe.exec_.command == ["/bin/bash", "/etc/rabbitmq/config/startup-check.sh"]
    assert probe.period_seconds * probe.failure_threshold >= 600
    check = rabbitmq.config_map_data(NAMES, ARGS)["startup-check.sh"]
    assert "check_running" in check and "-ge 3" in check


def test_readiness_proves_the_amqp_listener_is_up(server):
    assert server.readiness_probe.tcp_socket.port == "amqp"


def test_no_liveness_probe_restarts_a_recovering_node(server):
    assert server.liveness_probe is None


def test_prestop_waits_for_quorum_then_drains(server):
    assert server.lifecycle.pre_stop.exec_.command == [
        "/bin/bash", "/etc/rabbitmq/config/pre-stop.sh"]
    script = rabbitmq.config_map_data(NAMES, ARGS)["pre-stop.sh"]
    assert script.index("await_online_quorum_plus_one -t 300") < script.index("drain -t 120")


def test_grace_period_covers_both_prestop_waits_and_is_bounded(pod):
    grace = pod.termination_grace_period_seconds
    assert grace > ARGS.prestop_quorum_wait_seconds + ARGS.drain_timeout_seconds
    assert grace < 3600  # never the 7-day wait that leaves pods stuck terminating


# -------------------------------------------------------------------------------- security


def test_pod_runs_restricted_as_uid_999(pod, server):
    context = pod.security_context
    assert (context.run_as_user, context.run_as_non_root, context.fs_group) == (999, True, 999)
    assert context.seccomp_profile.type == "RuntimeDefault"
    container = server.security_context
    assert container.run_as_user == 999
    assert container.allow_privilege_escalation is False
    assert container.capabilities.drop == ["ALL"]
    assert container.seccomp_profile.type == "RuntimeDefault"
    assert container.read_only_root_filesystem is True


def test_writable_paths_are_empty_dirs_or_the_pvc(pod, server):
    volumes = {volume.name: volume for volume in pod.volumes}
    for mount in server.volume_mounts:
        if not mount.read_only and mount.name != "data":
            assert volumes[mount.name].empty_dir is not None, mount.name


def test_service_account_token_is_mounted_only_where_discovery_calls_the_api():
    assert rabbitmq.statefulset_spec(NAMES, ARGS).template.spec \
        .automount_service_account_token is False
    older = RabbitMQClusterArgs(namespace="ha-celery", image="rabbitmq:4.0.9-management")
    assert rabbitmq.statefulset_spec(NAMES, older).template.spec \
        .automount_service_account_token is True


def test_peer_discovery_role_only_reads_endpoints():
    [rule] = rabbitmq.role_rules()
    assert (rule.api_groups, rule.resources, rule.verbs) == ([""], ["endpoints"], ["get"])


# --------------------------------------------------------------------------------- secrets

PASSWORDS = ("Admin0Password0Value", "App0Password0Value", "Monitor0Password0Value")


def test_no_secret_value_reaches_the_configmap_or_the_pod_spec(spec):
    secret_data = rabbitmq.server_secret_data(ARGS, *PASSWORDS)
    assert "Admin0Password0Value" in secret_data["default_user.conf"]
    public = repr(rabbitmq.config_map_data(NAMES, ARGS)) + repr(spec)
    for value in PASSWORDS:
        assert value not in public


def test_secrets_reach_the_pod_only_as_volume_references(pod, server):
    secrets = {volume.secret.secret_name for volume in pod.volumes if volume.secret}
    assert secrets == {"rabbitmq-server-config", "rabbitmq-erlang-cookie"}
    for variable in server.env:
        assert variable.value_from is None or variable.value_from.secret_key_ref is None
        assert "pass" not in variable.name.lower() and "cookie" not in variable.name.lower()


def test_broker_url_lists_every_pod_through_the_headless_service():
    url = rabbitmq.broker_url(NAMES, ARGS, "p@ss/word")
    urls = url.split(";")
    assert len(urls) == 3
    for ordinal, single in enumerate(urls):
        assert single == ("amqp://celery:p%40ss%2Fword@rabbitmq-"
                          f"{ordinal}.rabbitmq-nodes.ha-celery.svc.cluster.local:5672/celery")


# ----------------------------------------------------------------------- services, policies


def test_headless_service_publishes_not_ready_pods():
    spec = rabbitmq.headless_service_args(NAMES, ARGS)["spec"]
    assert spec.cluster_ip == "None"
    assert spec.publish_not_ready_addresses is True
    assert {port.port for port in spec.ports} >= {4369, 25672}


def test_client_service_is_cluster_internal_only():
    spec = rabbitmq.client_service_args(NAMES, ARGS)["spec"]
    assert spec.type == "ClusterIP"
    assert {port.port for port in spec.ports} == {5672, 15672, 15692}
    assert all(port.node_port is None for port in spec.ports)


def test_disruption_budget_allows_one_pod_down():
    budget = rabbitmq.pod_disruption_budget_spec(NAMES)
    assert budget.max_unavailable == 1 and budget.min_available is None
    assert budget.selector.match_labels == POD_SELECTOR


def _rules():
    policy = rabbitmq.network_policy_spec(NAMES, ARGS)
    assert policy.policy_types == ["Ingress", "Egress"]
    assert policy.pod_selector.match_labels == POD_SELECTOR
    return {
        tuple((port.port, port.end_port) for port in rule.ports):
            [peer.pod_selector.match_labels for peer in rule.from_]
        for rule in policy.ingress
    }


def test_amqp_is_open_only_to_platform_pods():
    assert _rules()[((5672, None),)] == [{label_names.PART_OF_KEY: label_names.PART_OF}]


def test_inter_node_ports_are_open_only_between_rabbitmq_pods():
    assert _rules()[((4369, None), (25672, None), (35672, 35682))] == [POD_SELECTOR]


def test_management_and_metrics_are_open_only_to_platform_pods():
    assert _rules()[((15672, None), (15692, None))] == [
        {label_names.PART_OF_KEY: label_names.PART_OF}]


def test_management_can_be_opened_to_named_namespaces_only():
    args = RabbitMQClusterArgs(namespace="ha-celery", management_client_namespaces=("keda",))
    policy = rabbitmq.network_policy_spec(NAMES, args)
    management = next(rule for rule in policy.ingress if rule.ports[0].port == 15672)
    [platform, keda] = management.from_
    assert platform.pod_selector.match_labels == {label_names.PART_OF_KEY: label_names.PART_OF}
    assert keda.namespace_selector.match_labels == {"kubernetes.io/metadata.name": "keda"}
    amqp = next(rule for rule in policy.ingress if rule.ports[0].port == 5672)
    assert all(peer.namespace_selector is None for peer in amqp.from_)


def test_queue_monitor_url_points_at_the_management_api_of_the_client_service():
    url = rabbitmq.queue_monitor_url(NAMES, ARGS, "pw")
    assert url == ("http://queue-monitor:pw@rabbitmq.ha-celery.svc.cluster.local:15672/celery")


def test_every_ingress_rule_names_its_peers():
    policy = rabbitmq.network_policy_spec(NAMES, ARGS)
    for rule in policy.ingress:
        assert rule.from_, "an ingress rule without 'from' admits every source"
        for peer in rule.from_:
            assert peer.ip_block is None and peer.namespace_selector is None


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("field,value,fragment", [
    ("replicas", 2, "odd"), ("replicas", 0, "odd"), ("replicas", 9, "at most 7"),
    ("image", "rabbitmq:latest", "version tag"), ("rabbitmq_version", "3.8.0", "not supported"),
    ("memory", "2GB", "quantity"), ("memory", "128Mi", "256Mi"),
    ("disk_free_limit", "30Gi", "less than storage_size"),
    ("memory_high_watermark_ratio", 0.95, "0.2 and 0.8"),
    ("cpu_request", "lots", "CPU"), ("zones", ("a", "a"), "distinct"),
    ("app_username", "guest", "not 'guest'"), ("admin_username", "celery", "different"),
    ("monitor_username", "admin", "different"), ("management_client_namespaces", ("K",), "DNS"),
    ("delivery_limit", 0, "1..1000"), ("prestop_quorum_wait_seconds", 604800, "bounded"),
    ("namespace", "Ha_Celery", "DNS label"),
])
def test_bad_args_name_field_value_and_what_is_allowed(field, value, fragment):
    with pytest.raises(ArgsError) as error:
        RabbitMQClusterArgs(**{"namespace": "ha-celery", field: value})
    message = str(error.value)
    assert fragment in message
    assert repr(value) in message or str(value) in message
    assert field in message or (field == "admin_username" and "app_username" in message)


def test_version_comes_from_the_image_unless_given():
    assert str(RabbitMQClusterArgs(namespace="n").version) == "4.3.4"
    assert str(RabbitMQClusterArgs(namespace="n", image="registry.example/rabbitmq@sha256:"
                                   + "a" * 64, rabbitmq_version="4.2.5").version) == "4.2.5"


def test_component_name_must_be_a_short_dns_label():
    with pytest.raises(ArgsError, match="DNS label"):
        ObjectNames("RabbitMQ")


# --------------------------------------------------------------------------- metrics scraper

SCRAPER = MetricsScraper(namespace="gmp-system", pod_labels={"app.kubernetes.io/name": "collector"})


def _scraper_ports(args: RabbitMQClusterArgs) -> set[int]:
    policy = rabbitmq.network_policy_spec(NAMES, args)
    gmp = {"kubernetes.io/metadata.name": "gmp-system"}
    return {port.port for rule in policy.ingress for peer in rule.from_
            if peer.namespace_selector is not None and peer.namespace_selector.match_labels == gmp
            for port in rule.ports}


@pytest.mark.parametrize("tls,port", [(True, 15691), (False, 15692)])
def test_the_scraper_is_admitted_to_the_metrics_port_clients_use(tls, port):
    """With TLS the plain 15692 listens on the pod's loopback only: admitting the scraper there
    would reach nothing, and 15691 (https) would stay closed to it."""
    args = dataclasses.replace(ARGS, metrics_scraper=SCRAPER,
                               certificate_authority=object() if tls else None)  # type: ignore[arg-type]
    assert args.client_ports.prometheus == port
    assert _scraper_ports(args) == {port}
