"""Each workload, given a metrics scraper, serves its metrics on a named port, adds its exporter
sidecar, and admits that scraper to that port and nothing else; without one, nothing changes."""

from __future__ import annotations

import pytest

from infra import postgres as pg
from infra.backup import (
    LocalBackupStorage,
    PgHoardBackupArgs,
    backup_ingress,
    deployment_spec,
)
from infra.flower import FlowerArgs, flower_command, flower_network_policy_args
from infra.keda import OPERATOR_METRICS_PORT, KedaArgs, chart_values, keda_ingress
from infra.network_policy import MetricsScraper
from infra.observability import sources
from infra.validation import ArgsError
from infra.web import WebAppArgs, web_container, web_ingress
from tests.infra.test_celery_mock_harness import runtime

SCRAPER = MetricsScraper(namespace="gmp-system", pod_labels={"app.kubernetes.io/name": "collector"})


def from_scraper(peers) -> list[tuple[int, ...]]:
    """The ports each peer naming the scraper's namespace opens."""
    return [tuple(port.port for port in peer.ports) for peer in peers
            if peer.namespace == "gmp-system"]


def test_a_scraper_is_admitted_to_one_port_and_never_to_every_pod_of_its_namespace():
    peer = SCRAPER.peer(9187)
    assert [p.port for p in peer.ports] == [9187]
    assert peer.pod_labels == {"app.kubernetes.io/name": "collector"}
    with pytest.raises(ArgsError, match="pod_labels"):
        MetricsScraper(namespace="monitoring", pod_labels={})


def test_web_names_its_metrics_listener_and_admits_only_the_scraper_to_it():
    plain = WebAppArgs(runtime=runtime(), replicas=1)
    scraped = WebAppArgs(runtime=runtime(), replicas=1, metrics_scraper=SCRAPER)
    assert [p.name for p in web_container(plain).ports] == ["http"]
    ports = {p.name: p.container_port for p in web_container(scraped).ports}
    assert ports == {"http": 8000, sources.METRICS_PORT_NAME: sources.WEB_METRICS_PORT}
    assert from_scraper(web_ingress(plain)) == []
    assert from_scraper(web_ingress(scraped)) == [(sources.WEB_METRICS_PORT,)]


def test_flower_purges_silent_workers_and_admits_the_scraper_to_its_port():
    args = FlowerArgs(runtime=runtime(), metrics_scraper=SCRAPER)
    assert "--purge_offline_workers=60" in flower_command(args)
    [rule] = flower_network_policy_args("flower", args).spec.ingress
    assert [p.port for p in rule.ports] == [5555]
    assert flower_network_policy_args("flower", FlowerArgs(runtime=runtime())).spec.ingress == []
    with pytest.raises(ArgsError, match="purge_offline_workers_seconds"):
        FlowerArgs(runtime=runtime(), purge_offline_workers_seconds=1)


def test_keda_serves_operator_metrics_only_when_scraped():
    assert chart_values(KedaArgs())["prometheus"]["operator"]["enabled"] is False
    scraped = KedaArgs(metrics_scraper=SCRAPER)
    operator = chart_values(scraped)["prometheus"]["operator"]
    # The chart's operator container port 8080 is named `http` (sources: the PodMonitoring's).
    assert operator == {"enabled": True, "port": OPERATOR_METRICS_PORT}
    assert OPERATOR_METRICS_PORT == sources.KEDA_OPERATOR_METRICS_PORT
    assert from_scraper(keda_ingress(scraped, "operator")) == [(OPERATOR_METRICS_PORT,)]
    # The webhook and the metrics API server stay closed to the scraper.
    assert from_scraper(keda_ingress(scraped, "webhooks")) == []
    assert from_scraper(keda_ingress(scraped, "metricServer")) == []


def backup_args(**overrides) -> PgHoardBackupArgs:
    return PgHoardBackupArgs(namespace="ha-celery", image="ha-celery/pghoard:dev",
                             storage=LocalBackupStorage(), database_host="postgres",
                             replication_user="pghoard", replication_password="x", **overrides)


def test_backup_pod_gets_the_freshness_sidecar_only_when_scraped():
    plain = deployment_spec("backup", backup_args()).template.spec
    scraped = deployment_spec("backup", backup_args(metrics_scraper=SCRAPER)).template.spec
    assert [c.name for c in plain.containers] == ["pghoard"]
    assert [c.name for c in scraped.containers] == ["pghoard", "backup-metrics"]
    assert from_scraper(backup_ingress(backup_args(metrics_scraper=SCRAPER))) == [
        (sources.BACKUP_METRICS_PORT,)]


def postgres_spec(a: pg.PostgresArgs):
    return pg.statefulset_spec("db", a, service_name="db", config_map_name="db-config",
                               credentials_secret_name="db-credentials").template.spec


def test_postgres_gets_the_exporter_its_role_script_and_a_policy_rule_only_when_scraped():
    plain = pg.PostgresArgs(namespace="ha-celery")
    scraped = pg.PostgresArgs(namespace="ha-celery", metrics_scraper=SCRAPER)
    assert [c.name for c in postgres_spec(plain).containers] == ["postgres"]
    assert postgres_spec(plain).containers[0].lifecycle.post_start is None
    assert "20-monitoring-role.sh" not in pg.config_files(plain)
    spec = postgres_spec(scraped)
    assert [c.name for c in spec.containers] == ["postgres", "postgres-exporter"]
    [password] = [e for e in spec.containers[1].env if e.name == "DATA_SOURCE_PASS"]
    assert password.value_from.secret_key_ref.name == "db-credentials"
    assert password.value_from.secret_key_ref.key == pg.MONITOR_PASSWORD_KEY
    # New databases run it from the init directory; existing ones at every start.
    [init] = [v for v in spec.volumes if v.name == "init"]
    assert [item.key for item in init.config_map.items] == ["10-roles.sh", "20-monitoring-role.sh"]
    hook = " ".join(spec.containers[0].lifecycle.post_start.exec_.command)
    assert "--host 127.0.0.1" in hook and "|| true" in hook
    assert "GRANT pg_monitor" in pg.config_files(scraped, "db")["20-monitoring-role.sh"]
    rules = pg.network_policy_spec("db", scraped).ingress
    assert [[p.port for p in rule.ports] for rule in rules] == [[5432], [9187]]
    assert len(pg.network_policy_spec("db", plain).ingress) == 1
