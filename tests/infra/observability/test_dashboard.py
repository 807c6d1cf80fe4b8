"""The dashboard: every query is valid PromQL, both renderings are well formed, and it shows what
the issue asks for. (The drill checks that every query returns data from a real Prometheus.)"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from infra.observability import dashboard
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion


def panel_list(version: str = "4.3.4", **options) -> list[dashboard.Panel]:
    metrics = PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse(version), broker_replicas=3,
                              keda_enabled=options.pop("keda", True))
    return dashboard.panels(metrics, **options)


@pytest.mark.parametrize("version", ["4.3.4", "3.10.8"])
def test_every_query_is_valid_promql(tmp_path, version):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/prereq.d/50-observability.sh")
    queries = dashboard.all_queries(panel_list(version, kube_state_metrics=True))
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries)]}]}
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_it_shows_what_operators_need_first():
    titles = " | ".join(f"{p.section}: {p.title}" for p in panel_list(kube_state_metrics=True))
    for expected in ("Messages per second", "Messages waiting per queue", "Consumers per queue",
                     "Pool replicas", "KEDA", "Task runtime", "failed", "Connections",
                     "newest base backup", "Requests per second", "5xx", "Latency",
                     "LCS jobs submitted and rejected"):
        assert expected in titles, expected
    legends = [q.legend for p in panel_list() for q in p.queries]
    assert {"published", "delivered", "acknowledged"} <= set(legends)


def test_optional_sources_add_or_remove_their_panels():
    plain = {p.title for p in panel_list(keda=False)}
    assert not any("KEDA" in t or "replicas" in t for t in plain)
    assert any("replicas" in p.title for p in panel_list(kube_state_metrics=True))


def test_cloud_monitoring_tiles_fit_the_grid_without_overlap_and_carry_promql():
    panels = panel_list(kube_state_metrics=True)
    body = dashboard.cloud_monitoring_dashboard(panels)
    layout = body["mosaicLayout"]
    assert layout["columns"] == 48
    cells = set()
    for tile in layout["tiles"]:
        assert tile["xPos"] >= 0 and tile["xPos"] + tile["width"] <= 48
        for x in range(tile["xPos"], tile["xPos"] + tile["width"]):
            for y in range(tile["yPos"], tile["yPos"] + tile["height"]):
                assert (x, y) not in cells
                cells.add((x, y))
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"]
            assert set(query) == {"prometheusQuery", "unitOverride"}
            assert query["unitOverride"] in {"1", "s", "By", "1/s"}
    assert [q for t in layout["tiles"] for d in t["widget"]["xyChart"]["dataSets"]
            for q in [d["timeSeriesQuery"]["prometheusQuery"]]] == dashboard.all_queries(panels)
    json.loads(dashboard.render_json(body))


def test_grafana_panels_have_unique_ids_and_ref_ids_and_known_units():
    body = dashboard.grafana_dashboard(panel_list())
    ids = [p["id"] for p in body["panels"]]
    assert len(ids) == len(set(ids))
    for panel in body["panels"]:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        assert panel["fieldConfig"]["defaults"]["unit"] in set(dashboard.GRAFANA_UNITS.values())
        assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                   for t in panel["targets"])
