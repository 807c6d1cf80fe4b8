"""The providers' force-new rules, as the change review applies them."""

from __future__ import annotations

import pytest

from stacks.plan import force_new
from stacks.plan.force_new import MISSING, forcing_rules, kubernetes_rules, parse_path, rules_for


def forced(rules, path, old="a", new="b"):
    return [rule.text for rule in forcing_rules(rules, parse_path(path), old, new)]


@pytest.mark.parametrize("text, path", [
    ("spec.template", ("spec", "template")),
    (".spec.containers[*].image", ("spec", "containers", "*", "image")),
    ('metadata.annotations["hacelery.io/config-checksum"]',
     ("metadata", "annotations", "hacelery.io/config-checksum")),
    ("spec.volumeClaimTemplates[0]", ("spec", "volumeClaimTemplates", 0)),
])
def test_property_paths_parse_and_format_back(text, path):
    assert parse_path(text) == path
    assert parse_path(force_new.format_path(path)) == path


def test_a_malformed_path_is_refused_with_the_text():
    with pytest.raises(ValueError, match="not a property path"):
        parse_path("spec..{x}")


def test_statefulset_claim_templates_and_selector_force_a_new_statefulset():
    rules = kubernetes_rules({"apiVersion": "apps/v1", "kind": "StatefulSet"}, {})
    assert forced(rules, "spec.volumeClaimTemplates[0].spec.resources.requests.storage") == [
        "spec.volumeClaimTemplates"]
    assert forced(rules, "spec.selector.matchLabels.app") != []
    assert forced(rules, "spec.template.spec.containers[0].image") == []
    assert forced(rules, "spec.replicas") == []


def test_every_kind_is_replaced_when_its_name_or_namespace_changes():
    for manifest in ({"apiVersion": "v1", "kind": "Service"},
                     {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}):
        rules = kubernetes_rules(manifest, {})
        assert forced(rules, "metadata.name") == ["metadata.name"]
        assert forced(rules, "metadata.namespace") == ["metadata.namespace"]
        assert forced(rules, "metadata.labels.x") == []


def test_a_jobs_template_is_immutable_but_a_deployments_is_not():
    job = kubernetes_rules({"apiVersion": "batch/v1", "kind": "Job"}, {})
    deployment = kubernetes_rules({"apiVersion": "apps/v1", "kind": "Deployment"}, {})
    path = "spec.template.spec.containers[0].image"
    assert forced(job, path) == ["spec.template"]
    assert forced(deployment, path) == []


def test_secret_data_changes_replace_unless_the_provider_makes_secrets_mutable():
    secret = {"apiVersion": "v1", "kind": "Secret"}
    assert forced(kubernetes_rules(secret, {}), "stringData.url") == ["stringData"]
    mutable = kubernetes_rules(secret, {"enableSecretMutable": True})
    assert forced(mutable, "stringData.url") == []
    assert forced(mutable, "type") == ["type"]
    # An immutable Secret is replaced whatever the provider says.
    frozen = kubernetes_rules({**secret, "immutable": True}, {"enableSecretMutable": True})
    assert forced(frozen, "stringData.url") == ["stringData"]


def test_configmap_data_changes_replace_unless_the_provider_makes_configmaps_mutable():
    config_map = {"apiVersion": "v1", "kind": "ConfigMap"}
    assert forced(kubernetes_rules(config_map, {}), "data.x") == ["data"]
    assert forced(kubernetes_rules(config_map, {"enableConfigMapMutable": "true"}), "data.x") == []


def test_a_claims_size_is_mutable_but_its_storage_class_is_not():
    rules = kubernetes_rules({"apiVersion": "v1", "kind": "PersistentVolumeClaim"}, {})
    assert forced(rules, "spec.resources.requests.storage") == []
    assert forced(rules, "spec.storageClassName") == ["spec.storageClassName"]


def test_a_whole_subtree_added_forces_a_new_object_when_it_holds_a_fixed_path():
    rules = kubernetes_rules({"apiVersion": "apps/v1", "kind": "StatefulSet"}, {})
    added = {"volumeClaimTemplates": [{"metadata": {"name": "data"}}], "replicas": 3}
    assert forced(rules, "spec", MISSING, added) == ["spec.volumeClaimTemplates"]
    assert forced(rules, "spec", MISSING, {"replicas": 3}) == []


def test_cluster_node_config_block_forces_a_new_cluster_only_when_it_appears_or_goes():
    rules = rules_for("gcp:container/cluster:Cluster", {})
    # GKE stops returning the default pool's node config once the pool is removed: the block
    # goes from absent to present in the next diff (terraform-provider-google#17511).
    assert "nodeConfig" in forced(rules, "nodeConfig", MISSING, {"machineType": "e2"})
    assert forced(rules, "nodeConfig.serviceAccount") == ["nodeConfig.serviceAccount"]
    assert forced(rules, "nodeConfig.machineType") == []
    assert forced(rules, "releaseChannel.channel") == []
    assert forced(rules, "privateClusterConfig.masterIpv4CidrBlock") != []
    assert forced(rules, "securityPostureConfig.vulnerabilityMode") == []


def test_node_pool_machine_type_is_updated_in_place_but_spot_replaces_the_pool():
    rules = rules_for("gcp:container/nodePool:NodePool", {})
    assert forced(rules, "nodeConfig.machineType") == []
    assert forced(rules, "nodeConfig.diskSizeGb") == []
    assert forced(rules, "nodeConfig.spot") == ["nodeConfig.spot"]
    assert forced(rules, "autoscaling.maxNodeCount") == []


@pytest.mark.parametrize("resource_type, path, replaces", [
    ("gcp:storage/bucket:Bucket", "location", True),
    ("gcp:storage/bucket:Bucket", "lifecycleRules[0].condition.age", False),
    ("gcp:storage/bucket:Bucket", "forceDestroy", False),
    ("gcp:dns/managedZone:ManagedZone", "dnsName", True),
    ("gcp:dns/managedZone:ManagedZone", "dnssecConfig.state", False),
    ("gcp:dns/recordSet:RecordSet", "rrdatas[0]", False),
    ("gcp:compute/subnetwork:Subnetwork", "secondaryIpRanges[0].ipCidrRange", False),
    ("gcp:compute/globalAddress:GlobalAddress", "name", True),
    ("gcp:compute/firewall:Firewall", "allows[0].ports[0]", False),
    ("random:index/randomPassword:RandomPassword", "length", True),
    ("tls:index/privateKey:PrivateKey", "rsaBits", True),
    ("kubernetes:helm.sh/v3:Release", "values.operator.replicaCount", False),
    ("kubernetes:helm.sh/v3:Release", "namespace", True),
    ("docker-build:index:Image", "tags[0]", False),
])
def test_cloud_provider_rules(resource_type, path, replaces):
    assert bool(forced(rules_for(resource_type, {}), path)) is replaces


def test_an_unknown_type_has_no_rules_rather_than_a_guess():
    assert rules_for("aws:s3/bucket:Bucket", {}) is None
