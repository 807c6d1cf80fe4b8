"""Day two through the offline plan: ordering, waits and what a second `pulumi up` does."""

from __future__ import annotations

import re

import pytest

STACKS = ("dev", "prod", "local")


def urn_of(plan, type_, name):
    return plan.one(type_, name).urn


def minutes(timeout: str) -> int:
    match = re.fullmatch(r"(\d+)m", timeout)
    assert match, timeout
    return int(match.group(1))


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespaced_object_is_created_after_and_deleted_before_its_namespace(plans, stack):
    plan = plans[stack]
    namespace = urn_of(plan, "kubernetes:core/v1:Namespace", "platform-namespace")
    namespaced = [r for r in plan.resources if r.custom and r.type.startswith("kubernetes:")
                  and (r.inputs.get("metadata") or {}).get("namespace") == "ha-celery"]
    assert len(namespaced) > 40
    missing = [r.name for r in namespaced if namespace not in r.options["dependsOn"]]
    assert missing == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_kubernetes_objects_wait_for_the_node_pools_and_the_control_plane_firewall(plans, stack):
    plan = plans[stack]
    [provider] = plan.of_type("pulumi:providers:kubernetes")
    needed = [r.urn for r in plan.of_type("gcp:container/nodePool:NodePool")]
    needed += [r.urn for r in plan.of_type("gcp:compute/firewall:Firewall")]
    assert len(needed) >= 2
    assert set(needed) <= set(provider.options["dependsOn"])


@pytest.mark.parametrize("stack", STACKS)
def test_app_workloads_start_after_the_broker_and_the_database(plans, stack):
    plan = plans[stack]
    broker = urn_of(plan, "kubernetes:apps/v1:StatefulSet", "rabbitmq-statefulset")
    database = urn_of(plan, "kubernetes:apps/v1:StatefulSet", "postgres-statefulset")
    workloads = [*plan.of_type("kubernetes:apps/v1:Deployment"),
                 *plan.of_type("kubernetes:batch/v1:CronJob")]
    app = [w for w in workloads if w.name != "backup-deployment"]
    assert len(app) == 6  # web, three worker pools, Flower, the sweeper
    for workload in app:
        assert {broker, database} <= set(workload.options["dependsOn"]), workload.name
    backup = plan.one("kubernetes:apps/v1:Deployment", "backup-deployment")
    assert database in backup.options["dependsOn"]


def test_app_deployments_may_take_a_node_scale_up_to_create_and_their_grace_to_delete(prod):
    for deployment in prod.of_type("kubernetes:apps/v1:Deployment"):
        if deployment.name == "backup-deployment":
            continue
        timeouts = deployment.options["customTimeouts"]
        assert minutes(timeouts["create"]) >= 20, deployment.name
        grace = deployment.inputs["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert minutes(timeouts["delete"]) * 60 >= grace + 300, deployment.name
    large = prod.one("kubernetes:apps/v1:Deployment", "worker-large-deployment")
    assert minutes(large.options["customTimeouts"]["delete"]) == 35  # 1800 s grace + 5 min


def test_rabbitmq_may_drain_every_node_before_its_delete_times_out(prod):
    statefulset = prod.one("kubernetes:apps/v1:StatefulSet", "rabbitmq-statefulset")
    grace = statefulset.inputs["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert minutes(statefulset.options["customTimeouts"]["delete"]) * 60 >= grace + 300


# --- the scheduler Job: one run per run id ----------------------------------------------------

def review(stack, before_overrides, after_overrides):
    from stacks.plan import compare, evaluate

    before = [r.to_json() for r in evaluate(stack, overrides=before_overrides).resources]
    after = [r.to_json() for r in evaluate(stack, overrides=after_overrides).resources]
    return compare.review(before, after)


def test_a_new_image_does_not_run_the_scheduler_job_again():
    result = review("dev", {"scheduler.runId": "batch-1"},
                    {"scheduler.runId": "batch-1", "image.build.tag": "v2"})
    assert [c for c in result.changes if c.type == "kubernetes:batch/v1:Job"] == []
    # ... while the long-running workloads roll onto the new image.
    assert any(c.rolling_restart and c.name == "web-deployment" for c in result.changes)


def test_a_new_run_id_replaces_the_one_job_and_nothing_else():
    result = review("dev", {"scheduler.runId": "batch-1"}, {"scheduler.runId": "batch-2"})
    [change] = result.changes
    assert (change.action, change.type) == ("replace", "kubernetes:batch/v1:Job")
    assert (change.old_name, change.name) == ("scheduler-batch-1", "scheduler-batch-2")
    assert change.risks == [] and result.exit_code(accept_risk=False) == 0


# --- Secrets and ConfigMaps: updated in place, and the pods that read them roll ---------------

APP_DEPLOYMENTS = {"web-deployment", "flower-deployment", "worker-default-deployment",
                   "worker-small-deployment", "worker-large-deployment"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_provider_updates_secrets_and_configmaps_in_place(plans, stack):
    [provider] = plans[stack].of_type("pulumi:providers:kubernetes")
    for key in ("enableSecretMutable", "enableConfigMapMutable"):
        assert str(provider.inputs[key]).lower() == "true", key


def changed(result, action=None):
    return {c.name for c in result.changes if action is None or c.action == action}


def test_a_new_app_secret_value_updates_the_secret_and_rolls_every_app_pod():
    before = {"appSecrets": {"SENTRY_DSN": {"secure": "v1:AAAAold"}}}
    after = {"appSecrets": {"SENTRY_DSN": {"secure": "v1:AAAAnew"}}}
    result = review("dev", before, after)
    secret = next(c for c in result.changes if c.name == "app-secrets-secret")
    assert secret.action == "update" and secret.risks == []
    rolled = {c.name for c in result.changes if c.rolling_restart}
    assert rolled == APP_DEPLOYMENTS
    assert changed(result) == {"app-secrets-secret"} | APP_DEPLOYMENTS
    assert result.exit_code(accept_risk=False) == 0


def test_a_new_vhost_updates_the_broker_secrets_and_rolls_the_broker_and_the_app():
    result = review("prod", {}, {"rabbitmq.vhost": "tasks"})
    assert changed(result, "replace") == set()
    for name in ("rabbitmq-broker", "rabbitmq-server-config", "rabbitmq-queue-monitor"):
        assert name in changed(result, "update"), name
    rolled = {c.name for c in result.changes if c.rolling_restart}
    assert rolled == APP_DEPLOYMENTS | {"rabbitmq-statefulset"}
    assert result.at_risk() == []


def test_a_new_backup_policy_updates_pghoards_config_and_restarts_it():
    result = review("prod", {}, {"backup.basebackupIntervalHours": 6})
    assert changed(result) == {"backup-config", "backup-deployment"}
    assert next(c for c in result.changes if c.name == "backup-deployment").rolling_restart


def test_no_pod_spec_is_hidden_as_a_secret(plans):
    """A secret Output anywhere in a pod template makes the whole spec secret in the state:
    previews would then show nothing of it. The checksums on templates are not secret."""
    from pulumi.runtime import rpc

    from stacks.plan import evaluate

    with_app_secrets = evaluate("dev", overrides={
        "appSecrets": {"SENTRY_DSN": {"secure": "v1:AAAAx"}}})
    for plan in (*plans.values(), with_app_secrets):
        for workload in plan.resources:
            spec = workload.inputs.get("spec") if workload.type.startswith("kubernetes:") else None
            if isinstance(spec, dict) or rpc.is_rpc_secret(spec):
                assert not rpc.is_rpc_secret(spec), workload.name
                template = (spec or {}).get("template")
                assert not rpc.is_rpc_secret(template), workload.name


# --- storage: growth is an in-place claim expansion --------------------------------------------

def claims(plan):
    return {r.inputs["metadata"]["name"]: r
            for r in plan.of_type("kubernetes:core/v1:PersistentVolumeClaim")}


def test_every_statefulset_volume_is_a_claim_of_its_own_that_outlives_the_stack(prod):
    by_name = claims(prod)
    assert set(by_name) == {"data-rabbitmq-0", "data-rabbitmq-1", "data-rabbitmq-2",
                            "data-postgres-0"}
    assert by_name["data-rabbitmq-0"].inputs["spec"]["resources"]["requests"]["storage"] \
        == "50Gi"
    assert by_name["data-postgres-0"].inputs["spec"]["storageClassName"] == \
        "postgres-regional-pd-ssd-b-c"
    assert all(claim.options["retainOnDelete"] for claim in by_name.values())
    for name, statefulset in (("rabbitmq", "rabbitmq-statefulset"),
                              ("postgres", "postgres-statefulset")):
        resource = prod.one("kubernetes:apps/v1:StatefulSet", statefulset)
        assert resource.options["ignoreChanges"] == ["spec.volumeClaimTemplates"]
        own = {c.urn for n, c in by_name.items() if n.startswith(f"data-{name}-")}
        assert own <= set(resource.options["dependsOn"])


def test_a_bigger_broker_volume_expands_the_claims_in_place_and_touches_nothing_else():
    result = review("prod", {}, {"rabbitmq.storageSize": "60Gi"})
    assert {c.name for c in result.changes} == {"rabbitmq-data-0", "rabbitmq-data-1",
                                                "rabbitmq-data-2"}
    for change in result.changes:
        assert change.action == "update" and change.risks == []
        assert [c.describe() for c in change.paths] == [
            "spec.resources.requests.storage: 50Gi -> 60Gi"]
    assert result.exit_code(accept_risk=False) == 0


def test_a_bigger_database_volume_expands_its_claim_in_place():
    result = review("prod", {}, {"postgres.storageSizeGib": 200})
    by_name = {c.name: c for c in result.changes}
    assert by_name["postgres-data-0"].action == "update"
    # max_slot_wal_keep_size follows the volume: the config changes and the server restarts.
    assert set(by_name) == {"postgres-data-0", "postgres-config", "postgres-statefulset"}
    assert by_name["postgres-statefulset"].rolling_restart
    assert result.exit_code(accept_risk=False) == 0


def test_a_smaller_broker_volume_is_refused_whatever_the_flag():
    result = review("prod", {}, {"rabbitmq.storageSize": "40Gi"})
    assert len(result.refused()) == 3
    assert result.exit_code(accept_risk=True) == 5


def test_a_new_storage_class_replaces_the_claims_with_data_at_risk():
    result = review("prod", {}, {"rabbitmq.storageClass": "standard-rwo"})
    replaced = {c.name for c in result.changes if c.action == "replace"}
    assert replaced == {"rabbitmq-data-0", "rabbitmq-data-1", "rabbitmq-data-2"}
    assert all("data at risk" in c.risk_kinds for c in result.changes if c.name in replaced)
    assert result.exit_code(accept_risk=False) == 4


def test_more_broker_replicas_add_claims_for_the_new_nodes():
    result = review("dev", {}, {"rabbitmq.replicas": 5})
    created = {c.name for c in result.changes if c.action == "create"}
    assert created == {"rabbitmq-data-3", "rabbitmq-data-4"}
    assert result.at_risk() == []


# --- protection: what holds data cannot be deleted or replaced by accident ---------------------

PROTECTED_IN_PROD = {
    ("kubernetes:core/v1:Namespace", "platform-namespace"),
    ("kubernetes:apps/v1:StatefulSet", "rabbitmq-statefulset"),
    ("kubernetes:apps/v1:StatefulSet", "postgres-statefulset"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-0"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-1"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-2"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "postgres-data-0"),
    ("gcp:storage/bucket:Bucket", "backup-bucket"),
    ("tls:index/privateKey:PrivateKey", "backup-encryption-key"),
    ("gcp:dns/managedZone:ManagedZone", "dns-zone"),
    ("gcp:container/cluster:Cluster", "gke-cluster"),
}


def test_prod_protects_exactly_what_holds_data(prod):
    protected = {(r.type, r.name) for r in prod.resources if r.options["protect"]}
    assert protected == PROTECTED_IN_PROD


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_disposable_stacks_protect_nothing(plans, stack):
    assert [r.name for r in plans[stack].resources if r.options["protect"]] == []


def test_prod_keeps_its_backups_even_after_protection_is_turned_off(prod):
    bucket = prod.one("gcp:storage/bucket:Bucket", "backup-bucket")
    assert bucket.options["retainOnDelete"] is True
    assert bucket.inputs["forceDestroy"] is False
    unprotected = evaluate_prod_without_protection()
    bucket = unprotected.one("gcp:storage/bucket:Bucket", "backup-bucket")
    assert (bucket.options["protect"], bucket.options["retainOnDelete"]) == (False, True)
    assert bucket.inputs["forceDestroy"] is False


def evaluate_prod_without_protection():
    from stacks.plan import evaluate

    return evaluate("prod", overrides={"protect": False})


def test_dev_backups_go_with_the_stack(dev):
    bucket = dev.one("gcp:storage/bucket:Bucket", "backup-bucket")
    assert bucket.options["retainOnDelete"] is False
    assert bucket.inputs["forceDestroy"] is True


def test_turning_protection_off_touches_nothing_in_the_cloud_but_the_clusters_guard():
    """Step one of a prod teardown: only options change, and GKE's deletion protection."""
    result = review("prod", {}, {"protect": False})
    by_action = {}
    for change in result.changes:
        by_action.setdefault(change.action, set()).add(change.name)
    assert by_action.pop("options") == {name for _, name in PROTECTED_IN_PROD} - {"gke-cluster"}
    assert by_action == {"update": {"gke-cluster"}}
    [cluster] = [c for c in result.changes if c.name == "gke-cluster"]
    assert [p.text for p in cluster.paths] == ["deletionProtection"]
    assert result.exit_code(accept_risk=False) == 0


def test_renaming_the_prod_namespace_is_refused_by_protection_and_stopped_by_the_review():
    result = review("prod", {}, {"namespace": "celery-two"})
    namespace = next(c for c in result.changes if c.name == "platform-namespace")
    assert namespace.action == "replace" and namespace.protected
    assert "data at risk" in namespace.risk_kinds
    statefulsets = [c for c in result.changes if c.type == "kubernetes:apps/v1:StatefulSet"]
    assert statefulsets and all(
        c.action == "replace" and c.protected and "data at risk" in c.risk_kinds
        for c in statefulsets)
    assert result.exit_code(accept_risk=False) == 4


# --- pulumi destroy ----------------------------------------------------------------------------

def test_deleting_the_namespace_may_wait_for_the_longest_grace_and_gkes_neg_cleanup(prod, dev):
    for plan in (prod, dev):
        namespace = plan.one("kubernetes:core/v1:Namespace", "platform-namespace")
        grace = max(
            d.inputs["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            for d in [*plan.of_type("kubernetes:apps/v1:Deployment"),
                      *plan.of_type("kubernetes:apps/v1:StatefulSet")])
        minutes_allowed = minutes(namespace.options["customTimeouts"]["delete"])
        assert minutes_allowed * 60 >= grace + 900, plan.stack
    # prod: the large workers' 30-minute grace plus 15 minutes for the NEGs.
    assert prod.one("kubernetes:core/v1:Namespace", "platform-namespace").options[
        "customTimeouts"]["delete"] == "45m"


def test_the_cluster_outlives_everything_in_it_on_destroy(prod):
    """Destroy runs in reverse dependency order: the namespace (and with it the Ingress's NEGs)
    goes before the provider, the provider before the node pools and the cluster, the cluster
    before its subnet and network."""
    [provider] = prod.of_type("pulumi:providers:kubernetes")
    namespace = prod.one("kubernetes:core/v1:Namespace", "platform-namespace")
    assert namespace.provider == provider.urn
    [cluster] = prod.of_type("gcp:container/cluster:Cluster")
    subnet = prod.one("gcp:compute/subnetwork:Subnetwork", "gke-subnet")
    # The provider's kubeconfig comes from the cluster; the cluster's subnetwork from the subnet.
    assert "gke-gcloud-auth-plugin" in str(provider.inputs["kubeconfig"])
    assert cluster.inputs["subnetwork"] == "gke-subnet-id" and subnet.urn
    ingress = prod.one("kubernetes:networking.k8s.io/v1:Ingress", "web-ingress")
    service = prod.one("kubernetes:core/v1:Service", "web-service")
    assert service.urn in ingress.options["dependsOn"]
    assert namespace.urn in ingress.options["dependsOn"]
