"""The Observability component under the plan's mock runtime: what it creates on each platform,
that every object passes the plan's validation, and that no secret leaks into a manifest."""

from __future__ import annotations

import dataclasses
import json

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc

from infra.observability import alerts, routing, scrape, sources
from infra.observability.component import Observability, ObservabilityArgs
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion
from infra.validation import ArgsError
from stacks import plan as plan_engine

NAMESPACE = "ha-celery"
METRICS = PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse("4.3.4"), broker_replicas=3)


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}


def targets(metrics: PlatformMetrics = METRICS) -> tuple[scrape.ScrapeTarget, ...]:
    found = [
        *scrape.rabbitmq_targets(namespace=NAMESPACE, selector=selector("rabbitmq"),
                                 rabbitmq=metrics.rabbitmq),
        scrape.flower_target(namespace=NAMESPACE, selector=selector("flower")),
        scrape.web_target(namespace=NAMESPACE, selector=selector("web")),
        scrape.postgres_target(namespace=NAMESPACE, selector=selector("postgres")),
        scrape.backup_target(namespace=NAMESPACE, selector=selector("backup")),
    ]
    if metrics.keda_enabled:
        found.append(scrape.keda_target())
    return tuple(found)


def evaluate(args: ObservabilityArgs) -> tuple[plan_engine.Plan, dict]:
    outputs = {}

    def program() -> None:
        component = Observability("observability", args)
        component.alert_routing.apply(lambda v: outputs.__setitem__("alert_routing", v))

    return plan_engine.run_program(program), outputs


def test_gcp_creates_pod_monitorings_rules_routing_and_a_dashboard_all_valid():
    plan, outputs = evaluate(ObservabilityArgs(namespace=NAMESPACE, metrics=METRICS,
                                               targets=targets()))
    manifests = plan.manifests()
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == sorted(["PodMonitoring"] * 7 + ["Rules", "ClusterRules", "Secret"])
    assert plan_engine.validate_manifests(manifests, "1.33") == []
    jobs = {m["metadata"]["name"] for m in manifests if m["kind"] == "PodMonitoring"}
    assert jobs == set(sources.Jobs().all())
    rules = next(m for m in manifests if m["kind"] == "Rules")
    names = {r["alert"] for g in rules["spec"]["groups"] for r in g["rules"]}
    assert len(names) == 22 and "KedaScalerErrors" not in names
    secret = next(m for m in manifests if m["kind"] == "Secret")
    assert secret["metadata"]["namespace"] == "gmp-public"
    assert secret["stringData"] == {"alertmanager.yaml": plan_engine.SECRET}
    (board,) = plan.of_type("gcp:monitoring/dashboard:Dashboard")
    tiles = json.loads(board.inputs["dashboardJson"])["mosaicLayout"]["tiles"]
    assert len(tiles) >= 20
    assert outputs["alert_routing"].startswith("alerts go nowhere")


def test_local_publishes_prometheus_files_alertmanager_and_a_grafana_dashboard():
    metrics = PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse("4.3.4"), broker_replicas=3,
                              keda_enabled=False)
    args = ObservabilityArgs(
        namespace=NAMESPACE, metrics=metrics, targets=targets(metrics), platform="local",
        routing=routing.AlertRoutingArgs(webhook_urls=("https://hooks.example.com/T0/s3cret",)),
    )
    plan, outputs = evaluate(args)
    manifests = plan.manifests()
    assert sorted(m["kind"] for m in manifests) == ["ConfigMap", "ConfigMap", "Secret"]
    assert plan_engine.validate_manifests(manifests, "1.33") == []
    prometheus = next(m for m in manifests if m["metadata"]["name"] == "observability-prometheus")
    config = yaml.safe_load(prometheus["data"]["prometheus.yml"])
    assert {c["job_name"] for c in config["scrape_configs"]} == {t.job for t in targets(metrics)}
    assert config["rule_files"] == ["rules.yaml"]
    assert "RabbitMQNodeDown" in prometheus["data"]["rules.yaml"]
    grafana = next(m for m in manifests if m["metadata"]["name"].endswith("grafana-dashboard"))
    assert grafana["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(grafana["data"]["ha-celery.json"])
    assert "s3cret" not in json.dumps(manifests)
    assert outputs["alert_routing"] == "alerts go to webhook 1"


@pulumi.runtime.test
def test_the_alertmanager_configuration_holds_resolved_secret_values():
    from infra.observability.component import alertmanager_yaml

    args = ObservabilityArgs(
        namespace=NAMESPACE, metrics=METRICS, targets=targets(),
        routing=routing.AlertRoutingArgs(
            emails=("oncall@example.com",),
            webhook_urls=(pulumi.Output.secret("https://hooks.example.com/T0/real"),),
            smtp=routing.SmtpSettings(smarthost="smtp.example.com:587",
                                      sender="alerts@example.com", username="relay",
                                      password=pulumi.Output.secret("pw")),
        ),
    )

    def check(text: str) -> None:
        config = yaml.safe_load(text)
        receiver = config["receivers"][0]
        assert receiver["webhook_configs"][0]["url"] == "https://hooks.example.com/T0/real"
        assert config["global"]["smtp_auth_password"] == "pw"

    return alertmanager_yaml(args).apply(check)


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"platform": "aws"}, "ObservabilityArgs.platform", "'gcp' or 'local'"),
        ({"targets": ()}, "ObservabilityArgs.targets", "ScrapeTarget"),
        ({"targets": targets()[1:]}, "ObservabilityArgs.targets", "rabbitmq"),
        ({"thresholds": alerts.AlertThresholds(queue_limits=(alerts.QueueLimits(queue="tiny"),))},
         "AlertThresholds.queue_limits", "worker queues only"),
        ({"evaluation_interval_seconds": 0}, "rule_groups.evaluation_interval_seconds",
         "1..600"),
    ],
)
def test_bad_component_inputs_name_the_field_and_the_fix(change, field, fragment):
    values = {"namespace": NAMESPACE, "metrics": METRICS, "targets": targets()}
    values.update(change)
    with pytest.raises(ArgsError) as raised:
        ObservabilityArgs(**values)
    assert raised.value.field == field
    assert fragment in str(raised.value)


def https_targets() -> tuple[scrape.ScrapeTarget, ...]:
    tls = scrape.ScrapeTls(server_name="rabbitmq.ha-celery.svc")
    return tuple(dataclasses.replace(t, tls=tls) if t.job.startswith("rabbitmq") else t
                 for t in targets())


def test_gcp_https_targets_get_the_ca_secret_and_its_reader_for_the_collectors():
    pem = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
    plan, _ = evaluate(ObservabilityArgs(namespace=NAMESPACE, metrics=METRICS,
                                         targets=https_targets(), ca_certificate=pem))
    manifests = plan.manifests()
    assert plan_engine.validate_manifests(manifests, "1.33") == []
    by_kind = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    secret = by_kind[("Secret", "scrape-ca")]
    assert secret["metadata"]["namespace"] == NAMESPACE
    [resource] = [r for r in plan.of_type("kubernetes:core/v1:Secret")
                  if r.inputs["metadata"]["name"] == "scrape-ca"]
    data = resource.inputs["stringData"]  # Secret data: Pulumi keeps it encrypted in state
    assert (rpc.unwrap_rpc_secret(data) if rpc.is_rpc_secret(data) else data) == {"ca.crt": pem}
    assert by_kind[("Role", "scrape-ca-reader")]["rules"][0]["resourceNames"] == ["scrape-ca"]
    binding = by_kind[("RoleBinding", "gmp-system:collector:scrape-ca-reader")]
    assert binding["subjects"][0]["namespace"] == "gmp-system"


def test_no_https_target_no_ca_secret_or_reader():
    plan, _ = evaluate(ObservabilityArgs(namespace=NAMESPACE, metrics=METRICS,
                                         targets=targets()))
    kinds = {m["kind"] for m in plan.manifests()}
    assert not kinds & {"Role", "RoleBinding"}


def test_gcp_https_targets_need_the_ca_certificate():
    with pytest.raises(ArgsError) as raised:
        ObservabilityArgs(namespace=NAMESPACE, metrics=METRICS, targets=https_targets())
    assert raised.value.field == "ObservabilityArgs.ca_certificate"
    # The user's Prometheus reads the CA from a file: nothing to create on local.
    ObservabilityArgs(namespace=NAMESPACE, metrics=METRICS, targets=https_targets(),
                      platform="local")
