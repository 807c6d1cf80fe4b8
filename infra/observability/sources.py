"""The metric vocabulary: which job serves which metric, under which name, at which version.

Owns the names every alert, dashboard panel and scrape target agrees on: the Prometheus ``job``
of each source (on GKE the name of its ``PodMonitoring``, which Managed Prometheus uses as the
job label), the port and path each exporter serves, and the metric names, checked against the
exporters' sources at the versions the platform runs:

- RabbitMQ's ``rabbitmq_prometheus`` plugin (image 4.3.4; the drill runs Debian's 3.10.8).
  ``/metrics`` is aggregated: node alarms, Erlang distribution links (``erlang_vm_dist_*``),
  global message counters, identity. Per-queue depth, consumers and acknowledgements only come
  from ``/metrics/detailed?family=...`` (or the much larger ``/metrics/per-object``), so a second
  job scrapes exactly the families the rules need. Where the versions differ:
  * acknowledgements per queue: ``queue_delivery_metrics`` (4.0+,
    ``rabbitmq_detailed_queue_messages_acked_total``) vs ``channel_queue_metrics`` per channel
    (3.x, ``rabbitmq_detailed_channel_messages_acked_total``);
  * quorum members that are up: ``rabbitmq_detailed_queue_info{queue_type, membership}`` (4.1+,
    one series per member node) vs the Raft metrics each member reports (``ra_metrics``,
    ``rabbitmq_detailed_raft_term_total``; renamed ``..._raft_term`` in 4.2);
  * no version reports the age of the oldest message of a quorum queue:
    ``queue_head_message_timestamp`` is only filled by classic queues (``rabbit_variable_queue``
    and ``rabbit_priority_queue`` in 4.3.4). The rules estimate the wait from depth and the
    acknowledgement rate instead (see ``alerts``).
- Flower 2.2's ``/metrics`` (``flower_events_total{worker,type,task}``,
  ``flower_task_runtime_seconds``, ``flower_worker_online{worker}``): Flower is already deployed,
  pinned in the app image, and fed by the worker events the platform already sends, so no
  second Celery exporter joins the supply chain. Its one trap: a worker killed without a
  ``worker-offline`` event keeps ``flower_worker_online 1`` unless Flower runs with
  ``--purge_offline_workers`` (``FLOWER_PURGE_OFFLINE_WORKERS_SECONDS``), which drops the series
  of workers whose heartbeats stopped.
- postgres_exporter (sidecar image v0.20.1; the drill runs Debian's 0.11.1): ``pg_up``,
  ``pg_settings_max_connections``, ``pg_stat_activity_count{datname,state}``,
  ``pg_replication_slots_pg_wal_lsn_diff{slot_name}`` have the same names in both.
- the web app (``app/metrics.py``, whose names are imported from there) and the backup
  exporter (``pghoard/backup_metrics.py``, which runs on pghoard's Python and cannot import
  this package, so its names are spelled here and a test compares them).
- KEDA 2.17's operator (port 8080): ``keda_scaler_metrics_value``, ``keda_scaler_active``,
  ``keda_scaler_detail_errors_total``.

Does not build any object or rule (``scrape``, ``alerts`` and ``dashboard`` do) and does not
import pulumi.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app import metrics as app_metrics
from app.settings import QUEUES
from infra.rabbitmq_config import PoisonMessagePolicy, RabbitMQVersion
from infra.validation import check

# --------------------------------------------------------------------------- jobs and ports


@dataclass(frozen=True, kw_only=True)
class Jobs:
    """The ``job`` label of each source (the PodMonitoring names on GKE)."""

    rabbitmq: str = "rabbitmq"
    """Each broker node's aggregated ``/metrics``: alarms, distribution links, global rates."""
    rabbitmq_queues: str = "rabbitmq-queues"
    """Each broker node's ``/metrics/detailed``: depth, consumers, acks per queue."""
    flower: str = "flower"
    postgres: str = "postgres"
    backup: str = "backup"
    web: str = "web"
    keda: str = "keda-operator"

    def __post_init__(self) -> None:
        values = [getattr(self, name) for name in self.__dataclass_fields__]
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            check(
                isinstance(value, str) and bool(_DNS_LABEL.match(value)),
                f"Jobs.{name}",
                value,
                "a DNS label (it is also a PodMonitoring name): lowercase letters, digits, '-'",
            )
        check(len(set(values)) == len(values), "Jobs", values, "a distinct name per source")

    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)


RABBITMQ_METRICS_PORT_NAME = "prometheus"
"""The broker container's client metrics port (infra/rabbitmq/network.py names it so): https on
15691 when the broker runs TLS (the stacks always do; ``scrape.ScrapeTls``), else http on 15692."""
FLOWER_METRICS_PORT_NAME = "http"
"""Flower serves /metrics on its UI port (5555)."""
WEB_METRICS_PORT = app_metrics.DEFAULT_METRICS_PORT
"""The web app's metrics listener, separate from the app port so the Ingress never exposes it."""
POSTGRES_EXPORTER_PORT = 9187
"""postgres_exporter's own default port."""
BACKUP_METRICS_PORT = 9188
"""pghoard/backup_metrics.py in the backup pod (pghoard's API keeps 16000)."""
KEDA_OPERATOR_METRICS_PORT = 8080
"""The KEDA operator's metrics port (the chart's ``prometheus.operator.port`` default), named
``http`` in the chart's Deployment; served only with ``prometheus.operator.enabled``."""
KEDA_OPERATOR_METRICS_PORT_NAME = "http"
KEDA_OPERATOR_SELECTOR = {"app": "keda-operator"}
"""The chart's own selector for its operator pods (its PodMonitor template uses the same)."""
METRICS_PORT_NAME = "metrics"
"""Port name of every metrics listener the platform adds (web, exporter sidecars)."""

FLOWER_PURGE_OFFLINE_WORKERS_SECONDS = 60
"""Flower drops a silent worker's series this long after its last heartbeat, so a killed worker
stops counting as online (Flower's default keeps it at 1 for ever)."""

# ------------------------------------------------------------------------------ RabbitMQ


@dataclass(frozen=True)
class RabbitMQMetrics:
    """RabbitMQ metric names and ``/metrics/detailed`` families for one broker version."""

    version: RabbitMQVersion

    @property
    def has_queue_delivery_metrics(self) -> bool:
        return self.version.at_least(4, 0)

    @property
    def has_queue_info(self) -> bool:
        return self.version.at_least(4, 1)

    def detailed_families(self) -> tuple[str, ...]:
        """The families the per-queue job requests: only what rules and panels use, because
        every family costs the node a pass over an ETS table per scrape."""
        families = ["queue_coarse_metrics", "queue_consumer_count"]
        families.append(
            "queue_delivery_metrics" if self.has_queue_delivery_metrics else "channel_queue_metrics"
        )
        if not self.has_queue_info:
            families.append("ra_metrics")
        return tuple(families)

    def detailed_params(self) -> dict[str, list[str]]:
        return {"family": list(self.detailed_families())}

    def acknowledged_rate(self, job: str, queue_selector: str, window: str) -> str:
        """Acknowledgements per second and queue (labels ``vhost``, ``queue``)."""
        name = (
            "rabbitmq_detailed_queue_messages_acked_total"
            if self.has_queue_delivery_metrics
            else "rabbitmq_detailed_channel_messages_acked_total"
        )
        return f'sum by (vhost, queue) (rate({name}{{job="{job}",{queue_selector}}}[{window}]))'

    def delivered_rate(self, job: str, window: str) -> str:
        """Deliveries (manual ack) per second and queue."""
        if self.has_queue_delivery_metrics:
            series = f'rabbitmq_detailed_queue_messages_delivered_ack_total{{job="{job}"}}'
        else:
            series = f'rabbitmq_detailed_channel_messages_delivered_ack_total{{job="{job}"}}'
        return f"sum by (vhost, queue) (rate({series}[{window}]))"

    def quorum_members_up(self, job: str) -> str:
        """Per quorum queue, how many of its member nodes are up and report it."""
        if self.has_queue_info:
            return (
                "count by (vhost, queue) (rabbitmq_detailed_queue_info"
                f'{{job="{job}",queue_type="rabbit_quorum_queue"}})'
            )
        # Every member node reports the Raft state of its replica (3.10-4.1 spelling).
        return f'count by (vhost, queue) (rabbitmq_detailed_raft_term_total{{job="{job}"}})'


# ------------------------------------------------------------------------- ours: web, backup

WEB_REQUESTS = app_metrics.REQUESTS_TOTAL
"""Counter{method, route, status}: every answered request."""
WEB_REQUEST_DURATION = app_metrics.REQUEST_DURATION
"""Histogram{method, route}: time from request to response."""
WEB_REQUESTS_IN_PROGRESS = app_metrics.REQUESTS_IN_PROGRESS
WEB_JOBS_SUBMITTED = app_metrics.JOBS_SUBMITTED_TOTAL
"""Counter{queue}: LCS jobs accepted (202)."""
WEB_JOBS_REJECTED = app_metrics.JOBS_REJECTED_TOTAL
"""Counter{reason}: submissions not accepted (invalid input or the broker unavailable)."""
WEB_DEPENDENCY_UP = app_metrics.DEPENDENCY_UP_NAME
"""Gauge{dependency}: 1 while a web pod reaches the broker / the database (``app/status.py``)."""
WEB_PROBE_ROUTES = ("/healthz", "/readyz")
"""Kubelet probes: excluded from error-ratio and latency alerts (they would dominate an idle
site's traffic and are not what users see)."""

BACKUP_DAEMON_UP = "backup_daemon_up"
"""1 when pghoard's API answered the exporter's last look."""
BACKUP_DAEMON_START = "backup_daemon_start_timestamp_seconds"
BACKUP_NEWEST_BASEBACKUP = "backup_newest_basebackup_start_timestamp_seconds"
BACKUP_BASEBACKUPS = "backup_basebackups"
BACKUP_LAST_WAL_UPLOAD = "backup_last_wal_upload_timestamp_seconds"
BACKUP_WAL_STREAMER_RUNNING = "backup_wal_streamer_running"
BACKUP_ALERT_FILE = "backup_alert_file_present"

# ---------------------------------------------------------------------------- the platform

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


@dataclass(frozen=True, kw_only=True)
class PlatformMetrics:
    """What the rules and the dashboard need to know about the platform being watched.

    Only the broker's version and size are required; the stack passes them from the RabbitMQ
    component's Args so the rules and the cluster cannot disagree.
    """

    rabbitmq_version: RabbitMQVersion
    broker_replicas: int
    worker_queues: tuple[str, ...] = QUEUES
    """One worker pool per queue; worker hostnames are ``<queue>@<pod>`` (infra/celery.py)."""
    dead_letter_queue: str = PoisonMessagePolicy.dead_letter_queue
    keda_enabled: bool = True
    jobs: Jobs = field(default_factory=Jobs)

    def __post_init__(self) -> None:
        owner = "PlatformMetrics"
        check(
            isinstance(self.rabbitmq_version, RabbitMQVersion),
            f"{owner}.rabbitmq_version",
            self.rabbitmq_version,
            "a RabbitMQVersion, e.g. RabbitMQVersion.parse('4.3.4')",
        )
        check(
            isinstance(self.broker_replicas, int)
            and not isinstance(self.broker_replicas, bool)
            and 1 <= self.broker_replicas <= 7
            and self.broker_replicas % 2 == 1,
            f"{owner}.broker_replicas",
            self.broker_replicas,
            "an odd number of broker nodes, 1..7",
        )
        check(
            isinstance(self.worker_queues, tuple)
            and len(self.worker_queues) > 0
            and all(isinstance(q, str) and _QUEUE_NAME.match(q) for q in self.worker_queues)
            and len(set(self.worker_queues)) == len(self.worker_queues),
            f"{owner}.worker_queues",
            self.worker_queues,
            "a tuple of distinct queue names (letters, digits, '_', '.', ':', '-')",
        )
        check(
            isinstance(self.dead_letter_queue, str)
            and bool(_QUEUE_NAME.match(self.dead_letter_queue))
            and self.dead_letter_queue not in self.worker_queues,
            f"{owner}.dead_letter_queue",
            self.dead_letter_queue,
            "a queue name that is not also a worker queue",
        )

    @property
    def rabbitmq(self) -> RabbitMQMetrics:
        return RabbitMQMetrics(self.rabbitmq_version)

    @property
    def quorum_majority(self) -> int:
        return self.broker_replicas // 2 + 1


def regex_alternatives(values: tuple[str, ...] | list[str]) -> str:
    """A PromQL regex matching exactly these literal values (RE2, inside a double-quoted string)."""
    return "|".join(re.sub(r"([.\\+*?\[\](){}|^$])", r"\\\\\1", value) for value in values)
