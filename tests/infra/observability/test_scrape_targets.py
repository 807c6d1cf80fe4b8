"""Scrape targets: GMP objects that pass the bundled CRD schemas, Prometheus configs promtool
accepts, and a NetworkPolicy rule that admits the collectors and nothing else."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from infra.observability import alerts, routing, scrape, sources
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion
from infra.validation import ArgsError
from stacks.plan import validate_manifests

NAMESPACE = "ha-celery"


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}


def every_target(version: str = "4.3.4") -> list[scrape.ScrapeTarget]:
    rabbitmq = sources.RabbitMQMetrics(RabbitMQVersion.parse(version))
    return [
        *scrape.rabbitmq_targets(namespace=NAMESPACE, selector=selector("rabbitmq"),
                                 rabbitmq=rabbitmq),
        scrape.flower_target(namespace=NAMESPACE, selector=selector("flower")),
        scrape.web_target(namespace=NAMESPACE, selector=selector("web")),
        scrape.postgres_target(namespace=NAMESPACE, selector=selector("postgres")),
        scrape.backup_target(namespace=NAMESPACE, selector=selector("backup")),
        scrape.keda_target(),
    ]


def test_every_source_has_its_own_job_named_as_the_rules_expect():
    jobs = [target.job for target in every_target()]
    assert sorted(jobs) == sorted(sources.Jobs().all())


def test_pod_monitorings_pass_the_bundled_gmp_schema():
    bodies = [scrape.pod_monitoring_body(target) for target in every_target()]
    assert validate_manifests(bodies, "1.33") == []


def test_the_bundled_schema_rejects_an_unknown_field():
    body = copy.deepcopy(scrape.pod_monitoring_body(every_target()[0]))
    body["spec"]["endpoints"][0]["scrapeInterval"] = "30s"  # the Prometheus Operator's spelling
    problems = validate_manifests([body], "1.33")
    assert len(problems) == 1
    assert "scrapeInterval" in str(problems[0])


@pytest.mark.parametrize("version", ["4.3.4", "3.10.8"])
def test_rules_objects_pass_the_bundled_gmp_schemas(version):
    metrics = PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse(version), broker_replicas=3)
    rules = alerts.alert_rules(metrics, alerts.AlertThresholds())
    namespaced = routing.rules_body(
        "ha-celery-alerts", NAMESPACE, alerts.rule_groups(rules, scope="namespace"))
    cluster = routing.cluster_rules_body(
        "ha-celery-keda-alerts", alerts.rule_groups(rules, scope="cluster"))
    assert validate_manifests([namespaced, cluster], "1.33") == []
    assert {r["alert"] for g in cluster["spec"]["groups"] for r in g["rules"]} == {
        "KedaScalerErrors"}


def test_the_per_queue_job_asks_for_the_families_its_version_serves():
    new = sources.RabbitMQMetrics(RabbitMQVersion.parse("4.3.4")).detailed_families()
    old = sources.RabbitMQMetrics(RabbitMQVersion.parse("3.10.8")).detailed_families()
    assert new == ("queue_coarse_metrics", "queue_consumer_count", "queue_delivery_metrics")
    assert old == ("queue_coarse_metrics", "queue_consumer_count", "channel_queue_metrics",
                   "ra_metrics")
    _, queues = scrape.rabbitmq_targets(
        namespace=NAMESPACE, selector=selector("rabbitmq"),
        rabbitmq=sources.RabbitMQMetrics(RabbitMQVersion.parse("4.3.4")))
    endpoint = scrape.pod_monitoring_body(queues)["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics/detailed"
    assert endpoint["params"] == {"family": list(new)}


def test_prometheus_accepts_the_generated_configuration(tmp_path):
    """promtool on a whole prometheus.yml (static addresses: Debian's Prometheus is built without
    Kubernetes discovery, so the kubernetes_sd variant is checked by the next test)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/prereq.d/50-observability.sh")
    targets = every_target()
    rules = tmp_path / "rules.yaml"
    metrics = PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse("4.3.4"), broker_replicas=3)
    rules.write_text(alerts.render_rules_yaml(
        alerts.rule_groups(alerts.alert_rules(metrics, alerts.AlertThresholds()))))
    configs = [scrape.static_scrape_config(t, [f"127.0.0.1:{9000 + i}"])
               for i, t in enumerate(targets)]
    config = scrape.prometheus_config(configs, rule_files=[rules.name],
                                      alertmanagers=["127.0.0.1:9093"])
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_local_prometheus_labels_targets_as_gmp_does():
    config = scrape.kubernetes_scrape_config(every_target()[2])
    replace = {r["target_label"]: r for r in config["relabel_configs"]
               if r["action"] == "replace"}
    assert replace["namespace"]["source_labels"] == ["__meta_kubernetes_namespace"]
    assert replace["instance"]["source_labels"] == [
        "__meta_kubernetes_pod_name", "__meta_kubernetes_pod_container_port_name"]
    assert config["job_name"] == "flower"
    discovery = [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}]
    assert config["kubernetes_sd_configs"] == discovery


def test_scraper_rule_admits_only_the_managed_collectors_on_the_metrics_port():
    rule = scrape.scraper_ingress_rule("metrics")
    (peer,) = rule.from_
    assert peer.namespace_selector.match_labels == {"kubernetes.io/metadata.name": "gmp-system"}
    assert peer.pod_selector.match_labels == {"app.kubernetes.io/name": "collector"}
    assert [(p.port, p.protocol) for p in rule.ports] == [("metrics", "TCP")]


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"selector": {}}, "ScrapeTarget['web'].selector", "empty selector"),
        ({"port": "metrics-port-too-long"}, "ScrapeTarget['web'].port", "15 characters"),
        ({"port": 0}, "ScrapeTarget['web'].port", "1..65535"),
        ({"path": "/metrics?x=1"}, "ScrapeTarget['web'].path", "params"),
        ({"timeout_seconds": 60}, "ScrapeTarget['web'].timeout_seconds", "interval_seconds (30)"),
        ({"job": "Web"}, "ScrapeTarget.job", "DNS label"),
    ],
)
def test_bad_scrape_targets_name_the_field_and_the_fix(overrides, field, fragment):
    values = {"job": "web", "namespace": NAMESPACE, "selector": selector("web"), "port": "metrics"}
    values.update(overrides)
    with pytest.raises(ArgsError) as raised:
        scrape.ScrapeTarget(**values)
    assert raised.value.field == field
    assert fragment in str(raised.value)


def test_scraper_rule_refuses_an_empty_selector():
    with pytest.raises(ArgsError, match="admits every pod"):
        scrape.scraper_ingress_rule(9100, scraper_namespace="monitoring", scraper_selector={})


# ------------------------------------------------------------------------------ HTTPS targets

TLS = scrape.ScrapeTls(server_name="rabbitmq.ha-celery.svc")


def rabbitmq_targets(tls: scrape.ScrapeTls | None) -> tuple[scrape.ScrapeTarget, ...]:
    return scrape.rabbitmq_targets(
        namespace=NAMESPACE, selector=selector("rabbitmq"), tls=tls,
        rabbitmq=sources.RabbitMQMetrics(RabbitMQVersion.parse("4.3.4")))


def test_https_targets_verify_the_server_on_gmp_and_pass_its_schema():
    bodies = [scrape.pod_monitoring_body(target) for target in rabbitmq_targets(TLS)]
    assert validate_manifests(bodies, "1.33") == []
    for body in bodies:
        [endpoint] = body["spec"]["endpoints"]
        assert endpoint["scheme"] == "https"
        assert endpoint["tls"] == {"ca": {"secret": {"name": "scrape-ca", "key": "ca.crt"}},
                                   "serverName": "rabbitmq.ha-celery.svc"}


def test_https_targets_verify_the_server_on_any_prometheus():
    for target in rabbitmq_targets(TLS):
        config = scrape.kubernetes_scrape_config(target)
        assert config["scheme"] == "https"
        assert config["tls_config"] == {"ca_file": scrape.LOCAL_PROMETHEUS_CA_FILE,
                                        "server_name": "rabbitmq.ha-celery.svc"}


def test_without_tls_the_brokers_are_scraped_over_plain_http():
    for target in rabbitmq_targets(None):
        assert target.scheme == "http"
        [endpoint] = scrape.pod_monitoring_body(target)["spec"]["endpoints"]
        assert "scheme" not in endpoint and "tls" not in endpoint  # GMP's default: http
        config = scrape.kubernetes_scrape_config(target)
        assert "scheme" not in config and "tls_config" not in config


def test_prometheus_accepts_an_https_job_with_its_ca(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/prereq.d/50-observability.sh")
    ca = tmp_path / "ca.crt"
    ca.write_text("")  # promtool checks that the file exists, not its contents
    tls = scrape.ScrapeTls(server_name="rabbitmq.ha-celery.svc", ca_file=str(ca))
    configs = [scrape.static_scrape_config(t, ["127.0.0.1:15691"]) for t in rabbitmq_targets(tls)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(scrape.prometheus_config(configs), sort_keys=False))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gmp_secret_reader_names_one_secret_and_the_collectors():
    role, binding = scrape.gmp_secret_reader("scrape-ca", NAMESPACE)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                              "resourceNames": ["scrape-ca"], "verbs": ["get", "list", "watch"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collector",
                                    "namespace": "gmp-system"}]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"server_name": "10.0.0.7:15691"}, "ScrapeTls.server_name"),
        ({"server_name": "Rabbitmq"}, "ScrapeTls.server_name"),
        ({"ca_secret": ""}, "ScrapeTls.ca_secret"),
        ({"ca_file": "ca.crt"}, "ScrapeTls.ca_file"),
    ],
)
def test_bad_scrape_tls_names_the_field(overrides, field):
    values = {"server_name": "rabbitmq.ha-celery.svc", **overrides}
    with pytest.raises(ArgsError) as raised:
        scrape.ScrapeTls(**values)
    assert raised.value.field == field
