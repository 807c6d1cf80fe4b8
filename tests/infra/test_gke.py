"""GKE: every security default is asserted, so removing one fails a test."""

from __future__ import annotations

import pulumi
import pytest
import yaml

from infra.gke import (
    CLUSTER_IGNORED_INPUTS,
    NODE_SERVICE_ACCOUNT_ROLES,
    NODE_TAG,
    VULNERABILITY_MODE,
    AuthorizedNetwork,
    GkeCluster,
    GkeClusterArgs,
    NodePoolArgs,
    cluster_settings,
    kubeconfig_yaml,
    node_config,
)
from infra.validation import ArgsError
from stacks import plan as plan_engine

ARGS = GkeClusterArgs(project="p-123456", region="europe-west1",
                      zones=("europe-west1-b", "europe-west1-c", "europe-west1-d"))


@pytest.fixture(scope="module")
def settings():
    return cluster_settings(ARGS)


def test_cluster_is_vpc_native_with_named_secondary_ranges(settings):
    assert settings["networking_mode"] == "VPC_NATIVE"
    policy = settings["ip_allocation_policy"]
    assert (policy.cluster_secondary_range_name, policy.services_secondary_range_name) == (
        "pods", "services")


def test_workload_identity_pool_is_the_projects(settings):
    assert settings["workload_identity_config"].workload_pool == "p-123456.svc.id.goog"


def test_network_policy_is_enforced_by_dataplane_v2(settings):
    assert settings["datapath_provider"] == "ADVANCED_DATAPATH"
    assert "network_policy" not in settings  # the Calico add-on conflicts with Dataplane V2


def test_managed_prometheus_collects_and_keeps_system_metrics(settings):
    monitoring = settings["monitoring_config"]
    assert monitoring.managed_prometheus.enabled is True
    # GKE refuses a component list without SYSTEM_COMPONENTS; HPA feeds the dashboard's replicas.
    assert monitoring.enable_components[0] == "SYSTEM_COMPONENTS"
    assert "HPA" in monitoring.enable_components


def test_nodes_are_private_and_control_plane_access_is_restricted(settings):
    private = settings["private_cluster_config"]
    assert private.enable_private_nodes is True
    assert private.master_ipv4_cidr_block == "172.16.0.0/28"
    networks = settings["master_authorized_networks_config"]
    assert networks.cidr_blocks == [] and networks.gcp_public_cidrs_access_enabled is False


def test_authorized_networks_come_from_args():
    args = GkeClusterArgs(project="p-123456", region="europe-west1", zones=("europe-west1-b",),
                          master_authorized_networks=(AuthorizedNetwork(cidr="203.0.113.0/24",
                                                                        display_name="office"),))
    [block] = cluster_settings(args)["master_authorized_networks_config"].cidr_blocks
    assert (block.cidr_block, block.display_name) == ("203.0.113.0/24", "office")


def test_legacy_abac_and_client_certificates_are_off(settings):
    assert settings["enable_legacy_abac"] is False
    auth = settings["master_auth"].client_certificate_config
    assert auth.issue_client_certificate is False


def test_insecure_rbac_bindings_and_anonymous_access_are_off(settings):
    rbac = settings["rbac_binding_config"]
    assert rbac.enable_insecure_binding_system_authenticated is False
    assert rbac.enable_insecure_binding_system_unauthenticated is False
    assert settings["anonymous_authentication_config"].mode == "LIMITED"


def test_shielded_nodes_and_release_channel(settings):
    assert settings["enable_shielded_nodes"] is True
    assert settings["release_channel"].channel == "REGULAR"


def test_deletion_protection_follows_args(settings):
    assert settings["deletion_protection"] is True
    off = GkeClusterArgs(project="p-123456", region="europe-west1", zones=("europe-west1-b",),
                         deletion_protection=False)
    assert cluster_settings(off)["deletion_protection"] is False


def test_nodes_boot_securely_and_hide_the_node_identity():
    config = node_config(ARGS, NodePoolArgs(name="general"), "nodes@p.iam.gserviceaccount.com")
    assert config.shielded_instance_config.enable_secure_boot is True
    assert config.shielded_instance_config.enable_integrity_monitoring is True
    assert config.workload_metadata_config.mode == "GKE_METADATA"
    assert config.metadata == {"disable-legacy-endpoints": "true"}
    assert config.service_account == "nodes@p.iam.gserviceaccount.com"


def test_spot_is_a_per_pool_option():
    assert node_config(ARGS, NodePoolArgs(name="a"), "x").spot is False
    assert node_config(ARGS, NodePoolArgs(name="a", spot=True), "x").spot is True


def test_kubeconfig_authenticates_with_the_gke_plugin_and_embeds_no_credential():
    document = yaml.safe_load(kubeconfig_yaml("c1", "203.0.113.1", "Q0E="))
    user = document["users"][0]["user"]
    assert user["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert set(user) == {"exec"}  # no token, no client key
    assert document["clusters"][0]["cluster"]["server"] == "https://203.0.113.1"


@pytest.mark.parametrize("field, value, message", [
    ("region", "europe-west", "a GCP region"),
    ("zones", ("us-east1-b",), "zones of region"),
    ("master_ipv4_cidr", "172.16.0.0/24", "/28"),
    ("release_channel", "FAST", "one of RAPID"),
    ("kubernetes_version", "1.33.2", "minor version"),
])
def test_bad_cluster_args_name_the_field(field, value, message):
    values = {"project": "p-123456", "region": "europe-west1", "zones": ("europe-west1-b",),
              field: value}
    with pytest.raises(ArgsError) as caught:
        GkeClusterArgs(**values)
    assert caught.value.field == f"GkeClusterArgs.{field}" and message in str(caught.value)


def test_node_pool_names_must_be_unique():
    with pytest.raises(ArgsError, match="unique node pool names"):
        GkeClusterArgs(project="p-123456", region="europe-west1", zones=("europe-west1-b",),
                       node_pools=(NodePoolArgs(name="a"), NodePoolArgs(name="a")))


# --- the component under per-test mocks --------------------------------------------------------

def run(args: GkeClusterArgs) -> plan_engine.Plan:
    return plan_engine.run_program(lambda: GkeCluster("gke", args))


def test_component_removes_the_default_pool_and_runs_its_own():
    graph = run(GkeClusterArgs(project="p-123456", region="europe-west1",
                               zones=("europe-west1-b", "europe-west1-c"),
                               node_pools=(NodePoolArgs(name="general"),
                                           NodePoolArgs(name="batch", spot=True))))
    [cluster] = graph.of_type("gcp:container/cluster:Cluster")
    assert cluster.inputs["removeDefaultNodePool"] is True
    pools = graph.of_type("gcp:container/nodePool:NodePool")
    assert sorted(p.name for p in pools) == ["gke-batch", "gke-general"]
    for pool in pools:
        assert pool.inputs["management"] == {"autoRepair": True, "autoUpgrade": True}
        assert pool.inputs["autoscaling"]["minNodeCount"] == 1
        assert pool.inputs["nodeLocations"] == ["europe-west1-b", "europe-west1-c"]
        assert pool.inputs["nodeConfig"]["serviceAccount"].startswith("gke-nodes@")


def test_node_service_account_gets_only_the_least_privilege_roles():
    graph = run(ARGS)
    roles = sorted(m.inputs["role"] for m in graph.of_type("gcp:projects/iAMMember:IAMMember"))
    assert roles == sorted(NODE_SERVICE_ACCOUNT_ROLES)
    assert not {"roles/editor", "roles/owner"} & set(roles)


def test_every_child_is_parented_to_the_component():
    graph = run(ARGS)
    [component] = graph.of_type("hacelery:gke:GkeCluster")
    children = [r for r in graph.resources if r.type.startswith("gcp:")]
    assert children and all(r.parent == component.urn for r in children)
    assert graph.of_type("gcp:compute/routerNat:RouterNat")


@pulumi.runtime.test
def test_component_kubeconfig_output_is_secret_and_points_at_the_endpoint():
    pulumi.runtime.set_mocks(plan_engine.PlanMocks(), project="ha-celery", stack="test",
                             preview=False)
    cluster = GkeCluster("gke", ARGS)

    def check(values):
        kubeconfig, is_secret = values
        assert is_secret
        assert "https://203.0.113.10" in kubeconfig and "UExBTi1DQQ==" in kubeconfig

    return pulumi.Output.all(cluster.kubeconfig,
                             pulumi.Output.from_input(cluster.kubeconfig.is_secret())).apply(check)


# --- day two: the next `pulumi up` ---------------------------------------------------------------

def test_the_default_pools_node_config_is_ignored_after_creation():
    graph = run(ARGS)
    [cluster] = graph.of_type("gcp:container/cluster:Cluster")
    assert cluster.options["ignoreChanges"] == sorted(CLUSTER_IGNORED_INPUTS)
    # Still sent on create: the throw-away default node uses the least-privilege account.
    assert cluster.inputs["nodeConfig"]["serviceAccount"].startswith("gke-nodes@")


def test_a_cluster_whose_node_config_gke_no_longer_returns_is_not_replaced():
    """The second `pulumi up`: after the default pool is removed, the cluster's state has no
    node config while the program still sends one. The provider's node_config block is
    ForceNew, so without ignoreChanges this is a replacement of the whole cluster."""
    from stacks.plan import compare

    graph = run(ARGS)
    [cluster] = [r.to_json() for r in graph.resources
                 if r.type == "gcp:container/cluster:Cluster"]
    as_gke_returns_it = json_copy(cluster)
    del as_gke_returns_it["inputs"]["nodeConfig"]
    assert compare.review([as_gke_returns_it], [cluster]).changes == []

    without_the_fix = json_copy(cluster)
    without_the_fix["options"]["ignoreChanges"] = []
    [change] = compare.review([as_gke_returns_it], [without_the_fix]).changes
    assert change.action == "replace"
    assert compare.DATA_AT_RISK in change.risk_kinds
    assert any(forced.startswith("nodeConfig ") for forced in change.forced_by)


def test_vulnerability_scanning_uses_a_mode_gke_still_offers(settings):
    posture = settings["security_posture_config"]
    assert posture.vulnerability_mode == VULNERABILITY_MODE == "VULNERABILITY_DISABLED"
    # Retired by GKE (standard tier removed 2025-07-31); a cluster asking for it is refused.
    assert posture.vulnerability_mode != "VULNERABILITY_BASIC"
    assert posture.mode == "BASIC"  # the workload configuration audit stays


def json_copy(value):
    import json

    return json.loads(json.dumps(value))


def test_the_control_plane_reaches_the_listed_node_ports_through_a_firewall_rule():
    args = GkeClusterArgs(project="p-123456", region="europe-west1", zones=("europe-west1-b",),
                          control_plane_ingress_ports=(6443, 9443))
    graph = run(args)
    [firewall] = graph.of_type("gcp:compute/firewall:Firewall")
    assert firewall.inputs["sourceRanges"] == [args.master_ipv4_cidr]
    assert firewall.inputs["direction"] == "INGRESS"
    assert firewall.inputs["allows"] == [{"protocol": "tcp", "ports": ["6443", "9443"]}]
    [pool] = graph.of_type("gcp:container/nodePool:NodePool")
    assert firewall.inputs["targetTags"] == pool.inputs["nodeConfig"]["tags"] == [NODE_TAG]


def test_no_firewall_rule_without_ports():
    assert run(ARGS).of_type("gcp:compute/firewall:Firewall") == []


@pytest.mark.parametrize("ports", [(0,), (70000,), (9443, 9443)])
def test_bad_control_plane_ports_are_refused(ports):
    with pytest.raises(ArgsError, match="control_plane_ingress_ports"):
        GkeClusterArgs(project="p-123456", region="europe-west1", zones=("europe-west1-b",),
                       control_plane_ingress_ports=ports)


def test_same_node_pod_traffic_reaches_the_flow_logs(settings):
    assert settings["enable_intranode_visibility"] is True


def test_google_groups_for_rbac_is_off_unless_a_group_is_named(settings):
    assert "authenticator_groups_config" not in settings
    grouped = GkeClusterArgs(project="p-123456", region="europe-west1",
                             zones=("europe-west1-b",),
                             rbac_security_group="gke-security-groups@example.com")
    config = cluster_settings(grouped)["authenticator_groups_config"]
    assert config.security_group == "gke-security-groups@example.com"


def test_a_security_group_gke_would_refuse_names_the_field():
    with pytest.raises(ArgsError) as caught:
        GkeClusterArgs(project="p-123456", region="europe-west1", zones=("europe-west1-b",),
                       rbac_security_group="admins@example.com")
    assert caught.value.field == "GkeClusterArgs.rbac_security_group"
    assert "gke-security-groups@YOUR-DOMAIN" in str(caught.value)
