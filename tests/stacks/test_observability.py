"""Monitoring in whole stacks, through the offline plan: what is scraped finds its pods and
ports, the configured thresholds reach the rules, and alerts go where the stack file says."""

from __future__ import annotations

import pytest
import yaml
from pulumi.runtime import rpc

from infra.observability import scrape
from infra.observability.routing import ALERTMANAGER_SECRET_KEY, ALERTMANAGER_SECRET_NAME
from stacks import monitoring
from stacks import plan as plan_engine
from stacks.config import parse

JOBS = {"rabbitmq", "rabbitmq-queues", "flower", "web", "postgres", "backup"}
EXPORTERS = {("StatefulSet", "postgres"): "postgres-exporter",
             ("Deployment", "backup"): "backup-metrics"}


def rule(plan: plan_engine.Plan, alert: str) -> dict:
    """One alert rule as the plan would send it (Rules, ClusterRules or the local rules.yaml)."""
    groups = []
    for kind in ("Rules", "ClusterRules"):
        for manifest in plan.kinds(kind):
            groups += manifest["spec"]["groups"]
    if not groups:
        [config_map] = [m for m in plan.kinds("ConfigMap")
                        if m["metadata"]["name"] == "observability-prometheus"]
        groups = yaml.safe_load(config_map["data"]["rules.yaml"])["groups"]
    [found] = [r for group in groups for r in group["rules"] if r.get("alert") == alert]
    return found


def secret_text(plan: plan_engine.Plan, name: str, namespace: str, key: str) -> str:
    [secret] = [r for r in plan.of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == name
                and r.inputs["metadata"]["namespace"] == namespace]
    data = secret.inputs["stringData"]
    data = rpc.unwrap_rpc_secret(data) if rpc.is_rpc_secret(data) else data
    value = data[key]
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def pod_templates(plan: plan_engine.Plan, namespace: str) -> list[dict]:
    templates = []
    for kind in ("Deployment", "StatefulSet"):
        for manifest in plan.kinds(kind):
            if manifest["metadata"]["namespace"] == namespace:
                templates.append(manifest["spec"]["template"])
    return templates


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_gcp_stacks_scrape_every_source_and_evaluate_the_rules_in_managed_prometheus(
        plans, stack):
    plan = plans[stack]
    monitorings = {m["metadata"]["name"]: m for m in plan.kinds("PodMonitoring")}
    assert set(monitorings) == JOBS | {"keda-operator"}
    assert monitorings["keda-operator"]["metadata"]["namespace"] == "keda"
    [rules] = plan.kinds("Rules")
    assert rules["metadata"]["namespace"] == "ha-celery"
    [cluster_rules] = plan.kinds("ClusterRules")  # KEDA's metrics live in another namespace
    alerts = [r["alert"] for manifest in (rules, cluster_rules)
              for group in manifest["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) == len(set(alerts)) >= 14
    assert "KedaScalerErrors" in alerts
    text = secret_text(plan, ALERTMANAGER_SECRET_NAME, "gmp-public", ALERTMANAGER_SECRET_KEY)
    assert yaml.safe_load(text)["route"]["receiver"]
    [dashboard] = plan.of_type("gcp:monitoring/dashboard:Dashboard")
    assert "rabbitmq_detailed_queue_messages" in dashboard.inputs["dashboardJson"]


def test_local_publishes_prometheus_alertmanager_and_grafana_files(local):
    assert local.kinds("PodMonitoring") == [] and local.kinds("Rules") == []
    [config_map] = [m for m in local.kinds("ConfigMap")
                    if m["metadata"]["name"] == "observability-prometheus"]
    prometheus = yaml.safe_load(config_map["data"]["prometheus.yml"])
    assert {job["job_name"] for job in prometheus["scrape_configs"]} == JOBS  # no KEDA on local
    assert yaml.safe_load(config_map["data"]["rules.yaml"])["groups"]
    alertmanager = secret_text(local, "observability-alertmanager", "ha-celery",
                               ALERTMANAGER_SECRET_KEY)
    assert yaml.safe_load(alertmanager)["route"]
    assert [m for m in local.kinds("ConfigMap")
            if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_scrape_target_selects_pods_that_name_its_port(plans, stack):
    """A PodMonitoring (or scrape config) whose selector or port name matches no pod would
    scrape nothing, and every alert reading it would only fire as 'target down'."""
    plan = plans[stack]
    config = plan_config(stack)
    targets = monitoring.scrape_targets(config, config.workloads,
                                        monitoring.platform_metrics(config.workloads))
    checked = set()
    for target in targets:
        if target.namespace == "keda":
            continue  # the Helm chart's pods (port `http`: tests/infra/test_metrics_scraping.py)
        matching = [t for t in pod_templates(plan, target.namespace)
                    if target.selector.items() <= t["metadata"]["labels"].items()]
        assert matching, target.job
        ports = {port.get("name") for template in matching
                 for container in template["spec"]["containers"]
                 for port in container.get("ports") or []}
        assert target.port in ports, (target.job, target.port, ports)
        checked.add(target.job)
    assert checked == JOBS


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_exporter_sidecars_are_in_the_database_and_backup_pods(plans, stack):
    plan = plans[stack]
    for (kind, name), container in EXPORTERS.items():
        spec = plan.manifest(kind, name)["spec"]["template"]["spec"]
        [sidecar] = [c for c in spec["containers"] if c["name"] == container]
        assert sidecar["resources"]["requests"] and sidecar["resources"]["limits"]["memory"]
        assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    postgres = plan.manifest("StatefulSet", "postgres")["spec"]["template"]["spec"]
    [exporter] = [c for c in postgres["containers"] if c["name"] == "postgres-exporter"]
    [password] = [e for e in exporter["env"] if e["name"] == "DATA_SOURCE_PASS"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": "postgres-credentials",
                                                    "key": "monitor-password"}
    [server] = [c for c in postgres["containers"] if c["name"] == "postgres"]
    assert "20-monitoring-role.sh" in " ".join(server["lifecycle"]["postStart"]["exec"]["command"])


def test_the_monitoring_role_is_created_with_pg_monitor_only(dev):
    [config_map] = [m for m in dev.kinds("ConfigMap") if m["metadata"]["name"] == "postgres-config"]
    script = config_map["data"]["20-monitoring-role.sh"]
    assert "GRANT pg_monitor TO postgres_exporter;" in script
    assert "NOSUPERUSER" in script and "default_transaction_read_only = on" in script
    assert "monitor-password" in script


def test_configured_thresholds_reach_the_rules():
    plan = plan_engine.evaluate("dev", overrides={
        "observability.thresholds.taskFailureRatio": 0.25,
        "observability.thresholds.queueLimits": [{"queue": "large", "maxMessages": 77}]})
    assert "> 0.25" in rule(plan, "CeleryTaskFailureRatioHigh")["expr"]
    assert "77" in rule(plan, "CeleryQueueBacklog")["expr"]


def test_prod_queue_limits_and_backup_ages_reach_the_rules(prod):
    assert "200" in rule(prod, "CeleryQueueBacklog")["expr"]  # Pulumi.prod.yaml, queue large
    # No threshold set: the alert follows ha-celery:backup.maxBasebackupAgeHours (14 h).
    assert str(14 * 3600) in rule(prod, "BackupBasebackupTooOld")["expr"]


def test_local_thresholds_reach_the_published_rules_file():
    plan = plan_engine.evaluate("local", overrides={"observability.thresholds.webP99Seconds": 3.5})
    assert "> 3.5" in rule(plan, "WebLatencyP99High")["expr"]


def test_prod_mails_the_configured_address_and_dev_warns_that_alerts_go_nowhere(plans):
    text = secret_text(plans["prod"], ALERTMANAGER_SECRET_NAME, "gmp-public",
                       ALERTMANAGER_SECRET_KEY)
    assert "oncall@celery.example.com" in text and "smtp-relay.gmail.com:587" in text
    assert monitoring.plan_notes(plan_config("prod")) == []
    [note] = monitoring.plan_notes(plan_config("dev"))
    assert "alerts go nowhere" in note and "ha-celery:observability.emails" in note


def test_monitoring_switched_off_builds_no_monitoring_and_no_sidecar():
    plan = plan_engine.evaluate("dev", overrides={"observability.enabled": False})
    assert plan.kinds("PodMonitoring") == [] and plan.kinds("Rules") == []
    postgres = plan.manifest("StatefulSet", "postgres")["spec"]["template"]["spec"]
    assert [c["name"] for c in postgres["containers"]] == ["postgres"]
    policy = [m for m in plan.kinds("NetworkPolicy") if m["metadata"]["name"] == "postgres-ingress"]
    assert "gmp-system" not in str(policy)


def plan_config(stack: str):
    """The stack's parsed settings (the plan's own input), without the Pulumi runtime."""
    from stacks.plan.stackfile import ROOT

    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return parse(document["config"], stack)


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_the_policy_pack_holds_for_the_sidecars_and_catches_one_without_limits(plans, stack):
    import copy

    from stacks.policy.pack import check_manifest

    for (kind, name), container in EXPORTERS.items():
        manifest = plans[stack].manifest(kind, name)
        assert check_manifest(manifest, "1.33") == []
        careless = copy.deepcopy(manifest)
        [sidecar] = [c for c in careless["spec"]["template"]["spec"]["containers"]
                     if c["name"] == container]
        del sidecar["resources"]["limits"]
        sidecar["securityContext"]["allowPrivilegeEscalation"] = True
        problems = check_manifest(careless, "1.33")
        assert any("allowPrivilegeEscalation" in p for p in problems), problems
        assert any("limit" in p.lower() for p in problems), problems


# ------------------------------------------------------------------ RabbitMQ over HTTPS

RABBITMQ_JOBS = ("rabbitmq", "rabbitmq-queues")


def rabbitmq_certificate_names(plan: plan_engine.Plan) -> list[str]:
    [request] = [r for r in plan.of_type("tls:index/certRequest:CertRequest")
                 if r.name.startswith("rabbitmq-")]
    return request.inputs["dnsNames"]


def secret_data(plan: plan_engine.Plan, name: str) -> dict[str, str]:
    [secret] = [r for r in plan.of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == name]
    data = secret.inputs["stringData"]
    return rpc.unwrap_rpc_secret(data) if rpc.is_rpc_secret(data) else data


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_gmp_scrapes_the_brokers_over_https_verified_against_the_stack_ca(plans, stack):
    plan = plans[stack]
    monitorings = {m["metadata"]["name"]: m for m in plan.kinds("PodMonitoring")}
    names = rabbitmq_certificate_names(plan)
    for job in RABBITMQ_JOBS:
        [endpoint] = monitorings[job]["spec"]["endpoints"]
        assert endpoint["port"] == "prometheus" and endpoint["scheme"] == "https", job
        tls = endpoint["tls"]
        assert set(tls) == {"ca", "serverName"}, "insecureSkipVerify or a client key crept in"
        assert tls["serverName"] in names
        ca = tls["ca"]["secret"]
        assert ca == {"name": "scrape-ca", "key": "ca.crt"}
    # Everything else keeps plain http (their listeners are admitted to the scraper only).
    for job in set(monitorings) - set(RABBITMQ_JOBS):
        [endpoint] = monitorings[job]["spec"]["endpoints"]
        assert "tls" not in endpoint and endpoint.get("scheme", "http") == "http", job


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_ca_secret_holds_the_ca_certificate_and_no_key(plans, stack):
    plan = plans[stack]
    data = secret_data(plan, "scrape-ca")
    assert set(data) == {"ca.crt"}
    server = secret_data(plan, "rabbitmq-tls")
    assert data["ca.crt"] == server["ca.crt"] != server["tls.crt"]
    assert "PRIVATE KEY" not in data["ca.crt"] and server["tls.key"] not in data["ca.crt"]
    [bundle] = [m for m in plan.kinds("ConfigMap") if m["metadata"]["name"] == "trust-bundle"]
    assert bundle["data"]["ca.crt"] == data["ca.crt"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_gmp_collectors_may_get_the_ca_secret_and_no_other(plans, stack):
    plan = plans[stack]
    roles = [m for m in plan.kinds("Role") if any(
        "secrets" in rule["resources"] for rule in m["rules"])]
    assert [role["metadata"]["name"] for role in roles] == ["scrape-ca-reader"]
    [role] = roles
    assert role["metadata"]["namespace"] == "ha-celery"
    [rule] = role["rules"]
    assert rule["resourceNames"] == ["scrape-ca"] and rule["resources"] == ["secrets"]
    assert set(rule["verbs"]) <= {"get", "list", "watch"}
    [binding] = [m for m in plan.kinds("RoleBinding")
                 if m["roleRef"]["name"] == "scrape-ca-reader"]
    assert binding["metadata"]["namespace"] == "ha-celery"
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collector",
                                    "namespace": "gmp-system"}]


def test_local_prometheus_scrapes_the_brokers_over_https_with_the_documented_ca(local):
    [config_map] = [m for m in local.kinds("ConfigMap")
                    if m["metadata"]["name"] == "observability-prometheus"]
    jobs = {job["job_name"]: job
            for job in yaml.safe_load(config_map["data"]["prometheus.yml"])["scrape_configs"]}
    names = rabbitmq_certificate_names(local)
    for job in RABBITMQ_JOBS:
        assert jobs[job]["scheme"] == "https"
        assert jobs[job]["tls_config"]["ca_file"] == scrape.LOCAL_PROMETHEUS_CA_FILE
        assert jobs[job]["tls_config"]["server_name"] in names
        assert "insecure_skip_verify" not in jobs[job]["tls_config"]
    assert "tls_config" not in jobs["web"]
    # No managed collector on local: no CA Secret and nothing that reads Secrets for it.
    assert not [r for r in local.of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == "scrape-ca"]
    assert not [m for m in local.kinds("Role") if m["metadata"]["name"] == "scrape-ca-reader"]
