"""A dashboard from code: one panel list, rendered for Cloud Monitoring and for Grafana.

Owns the panels operators look at first when an alert fires, each a title, a unit and PromQL
queries over the same job and metric names the alerts use (``sources``):

- broker: nodes up, messages published / delivered / acknowledged per second, memory against
  the high watermark;
- queues: depth, consumers, acknowledgements and estimated wait per queue;
- workers: live workers per pool (from Flower's heartbeats), KEDA's view of each pool (the queue
  length its scaler reads, whether it is active) and, where GKE's kube-state-metrics package is
  on, each pool's replica count; task runs by outcome, runtime percentiles, failure ratio;
- database: connections against max_connections, by state, WAL held by replication slots;
- backups: age of the newest base backup, time since the last WAL upload;
- web: requests by status, 5xx ratio, latency percentiles, jobs submitted and rejected;
- monitoring: scrape targets up per job.

Ratios use ``(... or vector(0))`` numerators, so a quiet system shows 0 instead of "no data"
(the drill checks that every query returns at least one series).

``cloud_monitoring_dashboard`` returns the ``dashboard_json`` of a ``gcp.monitoring.Dashboard``
(mosaic layout, PromQL ``timeSeriesQuery``); ``grafana_dashboard`` returns a Grafana dashboard
for the ``local`` stack (any Prometheus data source). Does not create resources (``component``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.observability import sources
from infra.observability.sources import PlatformMetrics, regex_alternatives

TITLE = "ha-celery platform"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    """Grafana legend template (``{{queue}}``); Cloud Monitoring shows the labels."""


@dataclass(frozen=True)
class Panel:
    section: str
    title: str
    unit: str
    """A UCUM unit as Cloud Monitoring wants it: ``1`` (a count or ratio), ``s``, ``By``,
    ``1/s``."""
    queries: tuple[Query, ...]


GRAFANA_UNITS = {"1": "short", "s": "s", "By": "bytes", "1/s": "ops", "%": "percentunit"}


def panels(metrics: PlatformMetrics, *, kube_state_metrics: bool = False) -> list[Panel]:
    """Every panel, in display order."""
    j = metrics.jobs
    r = metrics.rabbitmq
    worker_queues = f'queue=~"{regex_alternatives(metrics.worker_queues)}"'
    watched = (*metrics.worker_queues, metrics.dead_letter_queue)
    all_queues = f'queue=~"{regex_alternatives(watched)}"'

    def depth(selector: str) -> str:
        series = f'rabbitmq_detailed_queue_messages{{job="{j.rabbitmq_queues}",{selector}}}'
        return f"max by (queue) ({series})"

    finished = f'flower_events_total{{job="{j.flower}",type=~"task-succeeded|task-failed"}}'
    failed = f'flower_events_total{{job="{j.flower}",type="task-failed"}}'
    not_probe = f'route!~"{regex_alternatives(sources.WEB_PROBE_ROUTES)}"'
    requests = f'{sources.WEB_REQUESTS}{{job="{j.web}",{not_probe}}}'
    errors = f'{sources.WEB_REQUESTS}{{job="{j.web}",{not_probe},status=~"5.."}}'
    buckets = f'{sources.WEB_REQUEST_DURATION}_bucket{{job="{j.web}",{not_probe}}}'

    def global_rate(counter: str) -> str:
        return f'sum(rate(rabbitmq_global_messages_{counter}_total{{job="{j.rabbitmq}"}}[5m]))'

    acks = r.acknowledged_rate(j.rabbitmq_queues, worker_queues, "5m")
    result = [
        Panel("Broker", "Broker nodes up", "1",
              (Query(f'sum(up{{job="{j.rabbitmq}"}})', "nodes up"),)),
        Panel("Broker", "Messages per second", "1/s", (
            Query(global_rate("received"), "published"),
            Query(global_rate("delivered"), "delivered"),
            Query(global_rate("acknowledged"), "acknowledged"),
        )),
        Panel("Broker", "Memory used / high watermark", "%", (
            Query(
                f'max by (instance) (rabbitmq_process_resident_memory_bytes{{job="{j.rabbitmq}"}}) '
                "/ on (instance) max by (instance) "
                f'(rabbitmq_resident_memory_limit_bytes{{job="{j.rabbitmq}"}})',
                "{{instance}}",
            ),
        )),
        Panel("Queues", "Messages waiting per queue", "1",
              (Query(depth(all_queues), "{{queue}}"),)),
        Panel("Queues", "Consumers per queue", "1", (
            Query(
                "max by (queue) "
                f'(rabbitmq_detailed_queue_consumers{{job="{j.rabbitmq_queues}",{worker_queues}}})',
                "{{queue}}",
            ),
        )),
        Panel("Queues", "Acknowledgements per second per queue", "1/s",
              (Query(f"sum by (queue) ({acks})", "{{queue}}"),)),
        Panel("Queues", "Estimated wait of a new message", "s", (
            Query(
                f"{depth(worker_queues)} / on (queue) clamp_min(sum by (queue) ({acks}) "
                f"or on (queue) ({depth(worker_queues)} * 0), 0.001)",
                "{{queue}}",
            ),
        )),
        Panel("Workers", "Live workers per pool", "1", (
            Query(
                'count by (pool) (label_replace(flower_worker_online{job="' + j.flower
                + '"} == 1, "pool", "$1", "worker", "([^@]+)@.*"))',
                "{{pool}}",
            ),
        )),
    ]
    if metrics.keda_enabled:
        result += [
            Panel("Workers", "KEDA: queue length each pool's scaler reads", "1", (
                Query(f'max by (scaledObject) (keda_scaler_metrics_value{{job="{j.keda}"}})',
                      "{{scaledObject}}"),
            )),
            Panel("Workers", "KEDA: scaler active (1) or idle (0)", "1", (
                Query(f'max by (scaledObject) (keda_scaler_active{{job="{j.keda}"}})',
                      "{{scaledObject}}"),
            )),
        ]
    if kube_state_metrics:
        result.append(
            Panel("Workers", "Pool replicas (KEDA's HorizontalPodAutoscalers)", "1", (
                Query("max by (horizontalpodautoscaler) "
                      "(kube_horizontalpodautoscaler_status_current_replicas"
                      '{horizontalpodautoscaler=~"keda-hpa-.*"})', "{{horizontalpodautoscaler}}"),
            ))
        )
    result += [
        Panel("Workers", "Task runs per second by outcome", "1/s", (
            Query(f'sum by (type) (rate(flower_events_total{{job="{j.flower}",'
                  'type=~"task-succeeded|task-failed|task-retried"}[5m]))', "{{type}}"),
        )),
        Panel("Workers", "Task runtime (p50, p95)", "s", tuple(
            Query(f"histogram_quantile({q}, sum by (le, task) "
                  f'(rate(flower_task_runtime_seconds_bucket{{job="{j.flower}"}}[5m])))',
                  f"p{int(q * 100)} {{{{task}}}}")
            for q in (0.5, 0.95)
        )),
        Panel("Workers", "Share of task runs that failed", "%", (
            Query(f"(sum by (task) (rate({failed}[5m])) or sum by (task) (rate({finished}[5m])) "
                  f"* 0) / sum by (task) (rate({finished}[5m]))", "{{task}}"),
        )),
        Panel("Database", "Connections / max_connections", "%", (
            Query(f'sum by (instance) (pg_stat_activity_count{{job="{j.postgres}"}}) / on '
                  "(instance) max by (instance) "
                  f'(pg_settings_max_connections{{job="{j.postgres}"}})', "{{instance}}"),
        )),
        Panel("Database", "Connections by state", "1", (
            Query(f'sum by (state) (pg_stat_activity_count{{job="{j.postgres}"}})', "{{state}}"),
        )),
        Panel("Database", "WAL held back by replication slots", "By", (
            Query("max by (slot_name) "
                  f'(pg_replication_slots_pg_wal_lsn_diff{{job="{j.postgres}"}})',
                  "{{slot_name}}"),
        )),
        Panel("Backups", "Age of the newest base backup", "s", (
            Query(f"time() - max by (site) "
                  f'({sources.BACKUP_NEWEST_BASEBACKUP}{{job="{j.backup}"}})', "{{site}}"),
        )),
        Panel("Backups", "Time since the last WAL upload", "s", (
            Query(f"time() - max by (site) "
                  f'({sources.BACKUP_LAST_WAL_UPLOAD}{{job="{j.backup}"}})', "{{site}}"),
        )),
        Panel("Web", "Requests per second by status", "1/s", (
            Query(f'sum by (status) (rate({sources.WEB_REQUESTS}{{job="{j.web}"}}[5m]))',
                  "{{status}}"),
        )),
        Panel("Web", "Share of answers that are 5xx (probes excluded)", "%", (
            Query(f"(sum(rate({errors}[5m])) or vector(0)) / sum(rate({requests}[5m]))", "5xx"),
        )),
        Panel("Web", "Latency (p50, p99; probes excluded)", "s", tuple(
            Query(f"histogram_quantile({q}, sum by (le) (rate({buckets}[5m])))",
                  f"p{int(q * 100)}")
            for q in (0.5, 0.99)
        )),
        Panel("Web", "LCS jobs submitted and rejected per second", "1/s", (
            Query(f'sum by (queue) (rate({sources.WEB_JOBS_SUBMITTED}{{job="{j.web}"}}[5m]))',
                  "submitted {{queue}}"),
            Query(f'sum by (reason) (rate({sources.WEB_JOBS_REJECTED}{{job="{j.web}"}}[5m]))',
                  "rejected {{reason}}"),
        )),
        Panel("Monitoring", "Scrape targets up per job", "1",
              (Query("sum by (job) (up)", "{{job}}"),)),
    ]
    return result


def all_queries(panel_list: list[Panel]) -> list[str]:
    return [query.expr for panel in panel_list for query in panel.queries]


def cloud_monitoring_dashboard(panel_list: list[Panel], *, title: str = TITLE) -> dict[str, Any]:
    """The Dashboard resource body (``dashboard_json``): a 48-column mosaic, two charts a row."""
    tiles = []
    for index, panel in enumerate(panel_list):
        tiles.append({
            "xPos": (index % 2) * 24,
            "yPos": (index // 2) * 16,
            "width": 24,
            "height": 16,
            "widget": {
                "title": f"{panel.section} · {panel.title}",
                "xyChart": {
                    "chartOptions": {"mode": "COLOR"},
                    "dataSets": [
                        {
                            "plotType": "LINE",
                            "targetAxis": "Y1",
                            "timeSeriesQuery": {
                                "prometheusQuery": query.expr,
                                "unitOverride": "1" if panel.unit == "%" else panel.unit,
                            },
                        }
                        for query in panel.queries
                    ],
                    "yAxis": {"scale": "LINEAR"},
                },
            },
        })
    return {"displayName": title, "mosaicLayout": {"columns": 48, "tiles": tiles}}


def grafana_dashboard(panel_list: list[Panel], *, title: str = TITLE,
                      uid: str = "ha-celery-platform") -> dict[str, Any]:
    """A Grafana dashboard (schema 39) over a Prometheus data source chosen at import."""
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    grafana_panels = []
    for index, panel in enumerate(panel_list):
        grafana_panels.append({
            "id": index + 1,
            "type": "timeseries",
            "title": f"{panel.section} · {panel.title}",
            "datasource": datasource,
            "gridPos": {"x": (index % 2) * 12, "y": (index // 2) * 8, "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": GRAFANA_UNITS[panel.unit]}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + n), "datasource": datasource, "expr": query.expr,
                 "legendFormat": query.legend}
                for n, query in enumerate(panel.queries)
            ],
        })
    return {
        "uid": uid,
        "title": title,
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "1m",
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": grafana_panels,
    }


def render_json(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
