"""The workloads of every stack, through the offline plan: what each issue promises is there."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime import rpc

from stacks.plan import SECRET_PLACEHOLDER_PREFIX, write

QUEUES = ("default", "small", "large")


def pod_spec(manifest):
    return manifest["spec"]["template"]["spec"]


# --- RabbitMQ ---------------------------------------------------------------------------------

def test_prod_rabbitmq_is_three_replicas_that_never_share_a_node(prod):
    statefulset = prod.manifest("StatefulSet", "rabbitmq")
    assert statefulset["spec"]["replicas"] == 3
    anti = pod_spec(statefulset)["affinity"]["podAntiAffinity"]
    [rule] = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"


def test_prod_rabbitmq_spreads_over_the_stacks_zones(prod):
    spread = pod_spec(prod.manifest("StatefulSet", "rabbitmq"))["topologySpreadConstraints"]
    assert any(c["topologyKey"] == "topology.kubernetes.io/zone" for c in spread)


def test_prod_rabbitmq_has_a_disruption_budget_and_network_policy(prod):
    assert prod.manifest("PodDisruptionBudget", "rabbitmq")["spec"]["maxUnavailable"] == 1
    policy = prod.manifest("NetworkPolicy", "rabbitmq")
    assert set(policy["spec"]["policyTypes"]) >= {"Ingress"}


def test_prod_rabbitmq_config_makes_quorum_the_default_queue_type(prod):
    config = prod.manifest("ConfigMap", "rabbitmq-config")
    assert "default_queue_type = quorum" in config["data"]["rabbitmq.conf"]


def test_keda_may_read_queue_depth_from_the_management_api(prod):
    policy = prod.manifest("NetworkPolicy", "rabbitmq")
    text = json.dumps(policy)
    assert '"kubernetes.io/metadata.name": "keda"' in text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_keda_reads_only_the_queue_monitor_secret_from_its_own_namespace(plans, stack):
    plan = plans[stack]
    monitor = plan.manifest("Secret", "rabbitmq-queue-monitor")
    assert monitor["metadata"]["namespace"] == "keda"
    # Nothing else the platform holds is in KEDA's namespace.
    in_keda = [m["metadata"]["name"] for m in plan.kinds("Secret")
               if m["metadata"].get("namespace") == "keda"]
    assert in_keda == ["rabbitmq-queue-monitor"]
    assert set(monitor["stringData"]) == {"host", "tls", "ca"}
    for queue in QUEUES:
        auth = plan.manifest("ClusterTriggerAuthentication", f"ha-celery-worker-{queue}")
        refs = auth["spec"]["secretTargetRef"]
        assert {r["name"] for r in refs} == {"rabbitmq-queue-monitor"}
        # HTTPS to the management API, verified against the stack's CA (never unsafeSsl).
        assert {r["parameter"]: r["key"] for r in refs} == {"host": "host", "tls": "tls",
                                                            "ca": "ca"}
        scaled = plan.manifest("ScaledObject", f"worker-{queue}")
        assert scaled["spec"]["triggers"][0]["authenticationRef"] == {
            "name": f"ha-celery-worker-{queue}", "kind": "ClusterTriggerAuthentication"}
    (release,) = plan.of_type("kubernetes:helm.sh/v3:Release")
    assert release.to_json()["inputs"]["values"]["permissions"]["operator"]["restrict"] == {
        "secret": True}


# --- PostgreSQL and backups -------------------------------------------------------------------

def test_prod_database_is_a_statefulset_with_its_own_volume(prod):
    statefulset = prod.manifest("StatefulSet", "postgres")
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "postgres-regional-pd-ssd-b-c"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_prod_backup_bucket_has_every_protection(prod):
    [bucket] = prod.of_type("gcp:storage/bucket:Bucket")
    inputs = bucket.inputs
    assert inputs["uniformBucketLevelAccess"] is True
    assert inputs["publicAccessPrevention"] == "enforced"
    assert inputs["versioning"] == {"enabled": True}
    assert inputs["lifecycleRules"]
    assert inputs.get("forceDestroy") in (None, False)


def test_dev_backup_bucket_is_deleted_with_the_stack(dev):
    [bucket] = dev.of_type("gcp:storage/bucket:Bucket")
    assert bucket.inputs["forceDestroy"] is True


def test_backup_identity_is_bound_through_workload_identity_to_the_bucket_only(prod):
    [binding] = prod.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert binding.inputs["member"] == "serviceAccount:ha-celery-prod.svc.id.goog[ha-celery/backup]"
    grants = prod.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert grants and all(g.inputs["bucket"] == "ha-celery-prod-prod-pghoard" for g in grants)
    project_roles = [m.inputs["role"] for m in prod.of_type("gcp:projects/iAMMember:IAMMember")]
    assert not any(role.startswith("roles/storage") for role in project_roles)
    account = prod.manifest("ServiceAccount", "backup")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(
        "backup-")


def test_pghoard_config_names_the_bucket_and_holds_no_credential(prod):
    secret = prod.one("kubernetes:core/v1:Secret", "backup-config")
    data = rpc.unwrap_rpc_secret(secret.inputs["stringData"])
    config = json.loads(rpc.unwrap_rpc_secret(data["pghoard.json"]))
    [site] = config["backup_sites"].values()
    storage = site["object_storage"]
    assert storage["storage_type"] == "google"
    assert storage["bucket_name"] == "ha-celery-prod-prod-pghoard"
    assert "credential_file" not in storage and "credentials" not in storage
    assert "private" not in json.dumps(site.get("encryption_keys", {}))


def test_local_backups_go_to_a_volume(local):
    assert local.kinds("PersistentVolumeClaim")
    assert not [r for r in local.resources if r.type.startswith("gcp:")]


# --- Celery workload --------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_queue_has_a_worker_pool_with_pdb_and_probes(plans, stack):
    plan = plans[stack]
    for queue in QUEUES:
        deployment = plan.manifest("Deployment", f"worker-{queue}")
        [container] = pod_spec(deployment)["containers"]
        command = container["command"]
        assert command[:4] == ["celery", "--app", "app.celery_app", "worker"]
        assert command[command.index("--queues") + 1] == queue
        assert container["livenessProbe"]["exec"]["command"][2:4] == ["app.healthcheck", "worker"]
        assert "readinessProbe" in container or "startupProbe" in container
        plan.manifest("PodDisruptionBudget", f"worker-{queue}")


def test_prod_pools_scale_on_queue_depth_including_unacked(prod):
    for queue in QUEUES:
        scaled = prod.manifest("ScaledObject", f"worker-{queue}")
        [trigger] = scaled["spec"]["triggers"]
        assert trigger["metadata"]["queueName"] == queue
        assert trigger["metadata"]["protocol"] == "http"
        assert trigger["metadata"]["mode"] == "QueueLength"
    assert prod.manifest("ScaledObject", "worker-small")["spec"]["maxReplicaCount"] == 20


def test_local_pools_fall_back_to_cpu_autoscaling(local):
    assert local.kinds("ScaledObject") == []
    assert {m["metadata"]["name"] for m in local.kinds("HorizontalPodAutoscaler")} == {
        f"worker-{queue}" for queue in QUEUES}


def test_workers_read_broker_and_database_urls_from_secrets(prod):
    for queue in QUEUES:
        [container] = pod_spec(prod.manifest("Deployment", f"worker-{queue}"))["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "rabbitmq-broker", "key": "broker_url"}
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "postgres-app-url"


def test_prod_web_is_behind_the_global_ip_with_a_managed_certificate(prod):
    assert prod.manifest("Deployment", "web")["spec"]["replicas"] >= 2
    ingress = prod.manifest("Ingress", "web")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.global-static-ip-name"] == "dns-ip"
    certificate = annotations["networking.gke.io/managed-certificates"]
    assert prod.manifest("ManagedCertificate", certificate)["spec"]["domains"] == [
        "celery.example.com"]
    frontend = annotations["networking.gke.io/v1beta1.FrontendConfig"]
    assert prod.manifest("FrontendConfig", frontend)["spec"]["redirectToHttps"]["enabled"] is True
    [address] = prod.of_type("gcp:compute/globalAddress:GlobalAddress")
    assert address.inputs["name"] == "dns-ip"


def test_local_web_has_no_ingress_but_a_service(local):
    assert local.kinds("Ingress") == []
    local.manifest("Service", "web")


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_flower_is_reachable_by_port_forward_only(plans, stack):
    service = plans[stack].manifest("Service", "flower")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert not [i for i in plans[stack].kinds("Ingress")
                if "flower" in json.dumps(i["spec"])]


def test_each_image_has_its_own_registry_repository(prod):
    ids = [r.inputs["repositoryId"] for r in
           prod.of_type("gcp:artifactregistry/repository:Repository")]
    assert sorted(ids) == ["ha-celery", "ha-celery-pghoard"]


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_no_secret_value_reaches_resources_json_or_manifests(plans, stack, tmp_path):
    write(plans[stack], tmp_path)
    written = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert SECRET_PLACEHOLDER_PREFIX not in written
    assert "PRIVATE KEY" not in written


def test_each_image_builds_from_the_context_its_dockerfile_copies_from(prod):
    images = {r.name: r.inputs for r in prod.of_type("docker-build:index:Image")}
    assert images["app-image-image"]["context"] == {"location": "."}
    assert images["app-image-image"]["dockerfile"] == {"location": "app/Dockerfile"}
    assert images["pghoard-image-image"]["context"] == {"location": "pghoard"}
    assert images["pghoard-image-image"]["dockerfile"] == {"location": "pghoard/Dockerfile"}


def test_app_secrets_reach_pods_by_reference_only():
    from stacks.plan import evaluate

    plan = evaluate("prod", overrides={"ha-celery:appSecrets": {
        "SENTRY_DSN": {"secure": "v1:ciphertext"}}})
    for queue in QUEUES:
        [container] = pod_spec(plan.manifest("Deployment", f"worker-{queue}"))["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["SENTRY_DSN"]["valueFrom"]["secretKeyRef"] == {
            "name": "app-secrets", "key": "SENTRY_DSN"}
    secret = plan.manifest("Secret", "app-secrets")
    assert secret["stringData"] == {"SENTRY_DSN": "[secret]"}
    [resource] = [r for r in plan.resources if r.name == "app-secrets-secret"]
    assert rpc.is_rpc_secret(resource.inputs["stringData"])
