"""Whole stacks through the offline plan: counts, wiring and the security defaults."""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

CLUSTER = "gcp:container/cluster:Cluster"


def kubernetes_resources(plan):
    return [r for r in plan.resources
            if r.type.startswith("kubernetes:") and r.custom]


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_kubernetes_object_uses_the_stacks_own_provider(plans, stack):
    plan = plans[stack]
    [provider] = plan.of_type("pulumi:providers:kubernetes")
    objects = kubernetes_resources(plan)
    assert objects
    # A default provider would silently deploy into whatever cluster kubectl points at.
    assert all(r.provider == provider.urn for r in objects), [
        r.name for r in objects if r.provider != provider.urn]


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_resource_belongs_to_a_component(plans, stack):
    plan = plans[stack]
    components = {r.urn for r in plan.resources if r.type.startswith("hacelery:")}
    for resource in plan.resources:
        if resource.custom and not resource.type.startswith("pulumi:providers:"):
            assert resource.parent in components, resource.urn


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_manifest_is_schema_valid_and_restricted(plans, stack):
    from stacks.plan import validate_manifests

    plan = plans[stack]
    assert validate_manifests(plan.manifests(), plan.kubernetes_version) == []


def test_local_stack_has_no_gcp_resource(local):
    assert [r.type for r in local.resources if r.type.startswith("gcp:")] == []
    [provider] = local.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "kind-ha-celery"
    assert "kubeconfig" not in provider.inputs


def test_gcp_stacks_build_the_provider_from_the_gke_kubeconfig(dev, prod):
    for plan in (dev, prod):
        [provider] = plan.of_type("pulumi:providers:kubernetes")
        kubeconfig = provider.inputs["kubeconfig"]
        assert rpc.is_rpc_secret(kubeconfig)
        assert "gke-gcloud-auth-plugin" in rpc.unwrap_rpc_secret(kubeconfig)


def test_prod_cluster_is_protected_and_dev_can_be_destroyed(dev, prod):
    [prod_cluster] = prod.of_type(CLUSTER)
    [dev_cluster] = dev.of_type(CLUSTER)
    assert prod_cluster.inputs["deletionProtection"] is True
    assert dev_cluster.inputs["deletionProtection"] is False


def test_prod_cluster_holds_every_hardening_default(prod):
    [cluster] = prod.of_type(CLUSTER)
    inputs = cluster.inputs
    assert inputs["removeDefaultNodePool"] is True
    assert inputs["workloadIdentityConfig"] == {"workloadPool": "ha-celery-prod.svc.id.goog"}
    assert inputs["enableShieldedNodes"] is True
    assert inputs["releaseChannel"] == {"channel": "STABLE"}
    assert inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    assert inputs["privateClusterConfig"]["enablePrivateNodes"] is True
    assert inputs["enableLegacyAbac"] is False
    assert inputs["masterAuth"]["clientCertificateConfig"]["issueClientCertificate"] is False
    assert len(inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]) == 2


def test_dev_uses_spot_nodes_and_prod_does_not(dev, prod):
    [dev_pool] = dev.of_type("gcp:container/nodePool:NodePool")
    [prod_pool] = prod.of_type("gcp:container/nodePool:NodePool")
    assert dev_pool.inputs["nodeConfig"]["spot"] is True
    assert prod_pool.inputs["nodeConfig"]["spot"] is False


def test_prod_zone_is_signed_and_has_the_seed_records(prod):
    [zone] = [z for z in prod.of_type("gcp:dns/managedZone:ManagedZone")
              if z.inputs["visibility"] == "public"]
    assert zone.inputs["dnssecConfig"]["state"] == "on"
    kinds = sorted(r.inputs["type"] for r in prod.of_type("gcp:dns/recordSet:RecordSet")
                   if r.inputs["managedZone"] == zone.inputs["name"])
    assert kinds == ["A", "A", "CAA", "CNAME", "MX", "TXT"]


def test_every_namespace_enforces_restricted_pod_security(plans):
    for plan in plans.values():
        namespaces = plan.kinds("Namespace")
        assert "ha-celery" in {n["metadata"]["name"] for n in namespaces}
        for namespace in namespaces:
            labels = namespace["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_namespaced_objects_live_in_the_platform_namespace(plans):
    from stacks.plan import CLUSTER_SCOPED_KINDS

    for plan in plans.values():
        for manifest in plan.manifests():
            if manifest["kind"] in CLUSTER_SCOPED_KINDS:
                continue
            # gmp-public: where GKE's managed Alertmanager reads its configuration Secret.
            assert manifest["metadata"].get("namespace") in ("ha-celery", "keda", "gmp-public"), \
                manifest["metadata"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_private_control_plane_may_reach_kedas_webhook_and_metrics_server(plans, stack):
    plan = plans[stack]
    [firewall] = plan.of_type("gcp:compute/firewall:Firewall")
    [release] = plan.of_type("kubernetes:helm.sh/v3:Release")
    values = release.inputs["values"]
    chart_ports = {str(int(values["webhooks"]["port"])),
                   str(int(values["service"]["portHttpsTarget"]))}
    assert chart_ports == {"9443", "6443"}
    [allow] = firewall.inputs["allows"]
    assert set(allow["ports"]) == chart_ports
    [cluster] = plan.of_type(CLUSTER)
    cidr = cluster.inputs["privateClusterConfig"]["masterIpv4CidrBlock"]
    assert firewall.inputs["sourceRanges"] == [cidr]
    # The webhook rejects bad objects (failurePolicy Fail): unreachable, it would reject all.
    assert values["webhooks"]["failurePolicy"] == "Fail"


def test_gcp_stacks_audit_access_to_the_backup_bucket_and_local_has_no_gcp_audit(plans) -> None:
    audit_type = "gcp:projects/iAMAuditConfig:IAMAuditConfig"
    for stack in ("dev", "prod"):
        [audit] = plans[stack].of_type(audit_type)
        assert audit.inputs["service"] == "storage.googleapis.com"
    assert plans["local"].of_type(audit_type) == []
