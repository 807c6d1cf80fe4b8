"""For every alert: input series that fire it and input series that keep it quiet.

The promtool unit tests are generated from these cases (``test_alert_rules_promtool.py``), one
test group per case, so the series of one case never influence another. Each case is written
against the default thresholds and a 3-node broker; where the broker version changes a metric's
name, the case asks ``PlatformMetrics`` which one applies.

The test module fails when an alert has no firing or no quiet case, so a new alert cannot be
added without both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from infra.observability.sources import PlatformMetrics

Series = tuple[str, str]
"""(series selector with labels, promtool values notation)."""


@dataclass(frozen=True)
class Case:
    description: str
    series: list[Series]
    eval_time: str
    expected: list[dict[str, str]] = field(default_factory=list)
    """Labels of each expected alert beyond alertname/severity/component; empty: must be quiet."""
    interval: str = "1m"


CaseBuilder = Callable[[PlatformMetrics], Case]

RQ = 'job="rabbitmq-queues",instance="rabbitmq-1:prometheus",vhost="celery"'
"""Labels of a per-queue series as the leader node reports them."""


def _up(job: str, instances: dict[str, str]) -> list[Series]:
    return [(f'up{{job="{job}",instance="{name}"}}', values) for name, values in instances.items()]


def _broker_up(values: tuple[str, str, str] = ("1x30", "1x30", "1x30")) -> list[Series]:
    return _up("rabbitmq", {f"rabbitmq-{i}:prometheus": v for i, v in enumerate(values)})


def _links(instance: int, peers: dict[int, str]) -> list[Series]:
    return [
        (
            f'erlang_vm_dist_node_state{{job="rabbitmq",instance="rabbitmq-{instance}:prometheus",'
            f'peer="rabbit@rabbitmq-{peer}"}}',
            values,
        )
        for peer, values in peers.items()
    ]


def _full_mesh() -> list[Series]:
    return [s for i in range(3) for s in _links(i, {p: "3x30" for p in range(3) if p != i})]


def _members(
    m: PlatformMetrics, queue: str, count: int, queue_type: str = "quorum"
) -> list[Series]:
    series = []
    for node in range(count):
        instance = f'instance="rabbitmq-{node}:prometheus"'
        role = "leader" if node == 0 else "follower"
        if m.rabbitmq.has_queue_info:
            labels = (
                f'job="rabbitmq-queues",{instance},vhost="celery",queue="{queue}",'
                f'queue_type="rabbit_{queue_type}_queue",membership="{role}"'
            )
            series.append((f"rabbitmq_detailed_queue_info{{{labels}}}", "1x30"))
        elif queue_type == "quorum":
            labels = f'job="rabbitmq-queues",{instance},vhost="celery",queue="{queue}"'
            series.append((f"rabbitmq_detailed_raft_term_total{{{labels}}}", "3x30"))
    return series


def _depth(queue: str, messages: str, consumers: str | None = None) -> list[Series]:
    series = [(f'rabbitmq_detailed_queue_messages{{{RQ},queue="{queue}"}}', messages)]
    if consumers is not None:
        series.append((f'rabbitmq_detailed_queue_consumers{{{RQ},queue="{queue}"}}', consumers))
    return series


def _acks(m: PlatformMetrics, queue: str, values: str) -> list[Series]:
    if m.rabbitmq.has_queue_delivery_metrics:
        return [(f'rabbitmq_detailed_queue_messages_acked_total{{{RQ},queue="{queue}"}}', values)]
    channel = 'channel="<0.1234.0>"'
    return [
        (
            f'rabbitmq_detailed_channel_messages_acked_total{{{RQ},{channel},queue="{queue}"}}',
            values,
        )
    ]


def _flower(event: str, task: str, values: str, worker: str = "small@worker-small-1") -> Series:
    return (
        f'flower_events_total{{job="flower",instance="flower-1:http",worker="{worker}",'
        f'type="{event}",task="{task}"}}',
        values,
    )


def _online(worker: str, values: str = "1x30") -> Series:
    return (
        f'flower_worker_online{{job="flower",instance="flower-1:http",worker="{worker}"}}',
        values,
    )


PG = 'job="postgres",instance="postgres-0:metrics"'
BK = 'job="backup",instance="backup-0:metrics",site="default"'


def _requests(route: str, status: str, values: str, method: str = "POST") -> Series:
    return (
        f'hacelery_web_requests_total{{job="web",instance="web-1:metrics",method="{method}",'
        f'route="{route}",status="{status}"}}',
        values,
    )


def _dependency(dependency: str, pods: dict[str, str]) -> list[Series]:
    return [
        (f'hacelery_web_dependency_up{{job="web",instance="{pod}:metrics",'
         f'dependency="{dependency}"}}', values)
        for pod, values in pods.items()
    ]


def _bucket(le: str, values: str) -> Series:
    return (
        f'hacelery_web_request_duration_seconds_bucket{{job="web",instance="web-1:metrics",'
        f'method="POST",route="/api/jobs",le="{le}"}}',
        values,
    )


FIRING: dict[str, list[CaseBuilder]] = {
    "RabbitMQNodeDown": [
        lambda m: Case(
            "one node stops answering", _broker_up(("1x30", "1x30", "1 1 0x28")), "10m", [{}]
        ),
        lambda m: Case(
            "no broker target at all", _up("flower", {"flower-1:http": "1x30"}), "10m", [{}]
        ),
    ],
    "RabbitMQClusterPartitioned": [
        lambda m: Case(
            "node 0 loses its link to node 2",
            _broker_up()
            + _links(0, {1: "3x30", 2: "3 3 1x28"})
            + _links(1, {0: "3x30", 2: "3x30"})
            + _links(2, {0: "3x30", 1: "3x30"}),
            "10m",
            [{"instance": "rabbitmq-0:prometheus"}],
        ),
        lambda m: Case(
            "node 2 runs but has no link at all (so nodes 0 and 1 lack theirs to it)",
            _broker_up() + _links(0, {1: "3x30"}) + _links(1, {0: "3x30"}),
            "10m",
            [{"instance": f"rabbitmq-{node}:prometheus"} for node in range(3)],
        ),
    ],
    "RabbitMQMemoryAlarm": [
        lambda m: Case(
            "node 1 raises the memory alarm",
            [
                (
                    'rabbitmq_alarms_memory_used_watermark{job="rabbitmq",instance="rabbitmq-0:prometheus"}',
                    "0x30",
                ),
                (
                    'rabbitmq_alarms_memory_used_watermark{job="rabbitmq",instance="rabbitmq-1:prometheus"}',
                    "0 0 1x28",
                ),
            ],
            "10m",
            [{"instance": "rabbitmq-1:prometheus"}],
        )
    ],
    "RabbitMQDiskAlarm": [
        lambda m: Case(
            "node 2 raises the disk alarm",
            [
                (
                    'rabbitmq_alarms_free_disk_space_watermark{job="rabbitmq",instance="rabbitmq-2:prometheus"}',
                    "0 0 1x28",
                )
            ],
            "10m",
            [{"instance": "rabbitmq-2:prometheus"}],
        )
    ],
    "RabbitMQQuorumQueueBelowMajority": [
        lambda m: Case(
            "one of three members left",
            _members(m, "small", 1) + _members(m, "large", 3),
            "10m",
            [{"vhost": "celery", "queue": "small"}],
        )
    ],
    "CeleryQueueWithoutConsumers": [
        lambda m: Case(
            "large holds messages, nobody consumes",
            _depth("large", "5x30", "0x30") + _depth("small", "5x30", "2x30"),
            "10m",
            [{"vhost": "celery", "queue": "large"}],
        )
    ],
    "CeleryQueueBacklog": [
        lambda m: Case(
            "small holds twice its limit",
            _depth("small", "20000x30") + _depth("large", "50x30"),
            "20m",
            [{"vhost": "celery", "queue": "small"}],
        )
    ],
    "CeleryQueueWaitTooLong": [
        lambda m: Case(
            "5000 messages acknowledged at 1/s: about 83 minutes",
            _depth("small", "5000x40") + _acks(m, "small", "0+60x40"),
            "30m",
            [{"vhost": "celery", "queue": "small"}],
        ),
        lambda m: Case(
            "messages and consumers but never an acknowledgement",
            _depth("default", "100x40", "2x40"),
            "30m",
            [{"vhost": "celery", "queue": "default"}],
        ),
    ],
    "CeleryDeadLetteredMessages": [
        lambda m: Case(
            "three poison messages parked",
            _depth(m.dead_letter_queue, "0 3x29"),
            "10m",
            [{"vhost": "celery", "queue": m.dead_letter_queue}],
        )
    ],
    "CeleryTaskFailureRatioHigh": [
        lambda m: Case(
            "a third of lcs runs fail",
            [
                _flower("task-succeeded", "lcs", "0+60x40"),
                _flower("task-failed", "lcs", "0+30x40"),
                _flower("task-succeeded", "count", "0+60x40"),
            ],
            "30m",
            [{"task": "lcs"}],
        )
    ],
    "CeleryWorkerPoolDown": [
        lambda m: Case(
            "no large worker sends heartbeats",
            [
                *_up("flower", {"flower-1:http": "1x30"}),
                _online("small@worker-small-1"),
                _online("default@worker-default-1"),
                _online("large@worker-large-1", "1 1 0x28"),
            ],
            "10m",
            [{"pool": "large"}],
        )
    ],
    "PostgresDown": [
        lambda m: Case(
            "the exporter reports pg_up 0", [(f"pg_up{{{PG}}}", "1 1 0x28")], "10m", [{}]
        ),
        lambda m: Case(
            "no exporter series at all", _up("web", {"web-1:metrics": "1x30"}), "10m", [{}]
        ),
    ],
    "PostgresConnectionsNearLimit": [
        lambda m: Case(
            "90 of 100 connections",
            [
                (f'pg_stat_activity_count{{{PG},datname="hacelery",state="active"}}', "30x30"),
                (f'pg_stat_activity_count{{{PG},datname="hacelery",state="idle"}}', "60x30"),
                (f"pg_settings_max_connections{{{PG}}}", "100x30"),
            ],
            "10m",
            [{"instance": "postgres-0:metrics"}],
        )
    ],
    "PostgresReplicationSlotRetainingWal": [
        lambda m: Case(
            "the backup slot holds 3 GB",
            [
                (
                    f'pg_replication_slots_pg_wal_lsn_diff{{{PG},slot_name="pghoard",database=""}}',
                    "3e9x30",
                )
            ],
            "20m",
            [{"instance": "postgres-0:metrics", "slot_name": "pghoard"}],
        )
    ],
    "BackupDaemonDown": [
        lambda m: Case(
            "pghoard stops answering", [(f"backup_daemon_up{{{BK}}}", "1 1 0x28")], "20m", [{}]
        ),
    ],
    "BackupBasebackupTooOld": [
        lambda m: Case(
            "the newest base backup is from the epoch's first second, 27 h ago",
            [
                (f"backup_newest_basebackup_start_timestamp_seconds{{{BK}}}", "0x1700"),
                (f"backup_daemon_start_timestamp_seconds{{{BK}}}", "0x1700"),
            ],
            "27h",
            [{"site": "default"}],
        ),
        lambda m: Case(
            "no base backup since the daemon started 27 h ago",
            [
                (f"backup_daemon_start_timestamp_seconds{{{BK}}}", "0x1700"),
                (f"backup_basebackups{{{BK}}}", "0x1700"),
            ],
            "27h",
            [{"site": "default"}],
        ),
    ],
    "BackupWalArchivingStalled": [
        lambda m: Case(
            "last WAL upload 70 minutes ago",
            [
                (f"backup_last_wal_upload_timestamp_seconds{{{BK}}}", "0x80"),
                (f"backup_daemon_start_timestamp_seconds{{{BK}}}", "0x80"),
            ],
            "70m",
            [{"site": "default"}],
        )
    ],
    "BackupAlertFile": [
        lambda m: Case(
            "pghoard wrote authentication_error",
            [(f'backup_alert_file_present{{{BK},file="authentication_error"}}', "0 0 1x28")],
            "10m",
            [{"site": "default", "file": "authentication_error"}],
        )
    ],
    "WebErrorRatioHigh": [
        lambda m: Case(
            "a third of submissions get 503",
            [_requests("/api/jobs", "202", "0+60x30"), _requests("/api/jobs", "503", "0+30x30")],
            "20m",
            [{}],
        )
    ],
    "WebDependencyUnavailable": [
        lambda m: Case(
            "both web pods lose the broker, the database stays",
            _dependency("broker", {"web-1": "1x5 0x25", "web-2": "1x5 0x25"})
            + _dependency("database", {"web-1": "1x30", "web-2": "1x30"}),
            "10m",
            [{"dependency": "broker"}],
        )
    ],
    "WebLatencyP99High": [
        lambda m: Case(
            "every request takes 0.5-5 s",
            [
                _bucket("0.5", "0x40"),
                _bucket("5", "0+60x40"),
                _bucket("+Inf", "0+60x40"),
                _requests("/api/jobs", "202", "0+60x40"),
            ],
            "30m",
            [{}],
        )
    ],
    "MetricsTargetDown": [
        lambda m: Case(
            "a web pod's metrics stop answering",
            _up("web", {"web-1:metrics": "1 1 0x28", "web-2:metrics": "1x30"})
            + _up("flower", {"flower-1:http": "1x30"})
            + _up("rabbitmq-queues", {"rabbitmq-0:prometheus": "1x30"}),
            "10m",
            [{"job": "web", "instance": "web-1:metrics"}],
        ),
        lambda m: Case(
            "no Flower target exists",
            _up("web", {"web-1:metrics": "1x30"})
            + _up("rabbitmq-queues", {"rabbitmq-0:prometheus": "1x30"}),
            "10m",
            [{"job": "flower"}],
        ),
    ],
    "KedaScalerErrors": [
        lambda m: Case(
            "the small pool's scaler fails every minute",
            [
                (
                    'keda_scaler_detail_errors_total{job="keda-operator",instance="keda-operator-1:8080",'
                    'namespace="ha-celery",scaledObject="worker-small",scaler="rabbitMQScaler",'
                    'triggerIndex="0",type="scaledobject"}',
                    "0+1x40",
                )
            ],
            "30m",
            [{"scaledObject": "worker-small"}],
        )
    ],
}


QUIET: dict[str, list[CaseBuilder]] = {
    "RabbitMQNodeDown": [lambda m: Case("all three nodes answer", _broker_up(), "10m")],
    "RabbitMQClusterPartitioned": [
        lambda m: Case(
            "full mesh; CLI connections do not count",
            _broker_up()
            + _full_mesh()
            + [
                (
                    'erlang_vm_dist_node_state{job="rabbitmq",instance="rabbitmq-0:prometheus",'
                    'peer="rabbitmqcli-438-rabbit@rabbitmq-0"}',
                    "1x30",
                )
            ],
            "10m",
        )
    ],
    "RabbitMQMemoryAlarm": [
        lambda m: Case(
            "no alarm",
            [
                (
                    'rabbitmq_alarms_memory_used_watermark{job="rabbitmq",instance="rabbitmq-1:prometheus"}',
                    "0x30",
                )
            ],
            "10m",
        )
    ],
    "RabbitMQDiskAlarm": [
        lambda m: Case(
            "alarm for less than its for:",
            [
                (
                    'rabbitmq_alarms_free_disk_space_watermark{job="rabbitmq",instance="rabbitmq-2:prometheus"}',
                    "0x8 1 0x20",
                )
            ],
            "10m",
        )
    ],
    "RabbitMQQuorumQueueBelowMajority": [
        lambda m: Case(
            "two of three members up is a majority; a classic queue has one member by design",
            _members(m, "small", 2) + _members(m, "celeryev.abc", 1, queue_type="classic"),
            "10m",
        )
    ],
    "CeleryQueueWithoutConsumers": [
        lambda m: Case(
            "consumed queues, and Celery's own delayed-delivery queue without consumers",
            _depth("large", "5x30", "1x30")
            + _depth("celery_delayed_0", "7x30", "0x30")
            + _depth("small", "0x30", "0x30"),
            "10m",
        )
    ],
    "CeleryQueueBacklog": [
        lambda m: Case("below the limit", _depth("small", "9000x30"), "20m"),
    ],
    "CeleryQueueWaitTooLong": [
        lambda m: Case(
            "5000 messages acknowledged at 10/s: about 8 minutes",
            _depth("small", "5000x40") + _acks(m, "small", "0+600x40"),
            "30m",
        ),
        lambda m: Case("an empty queue", _depth("large", "0x40", "0x40"), "30m"),
    ],
    "CeleryDeadLetteredMessages": [
        lambda m: Case("empty dead-letter queue", _depth(m.dead_letter_queue, "0x30"), "10m")
    ],
    "CeleryTaskFailureRatioHigh": [
        lambda m: Case(
            "1 failure in 61 runs",
            [_flower("task-succeeded", "lcs", "0+60x40"), _flower("task-failed", "lcs", "0+1x40")],
            "30m",
        ),
        lambda m: Case(
            "half of very few runs fail (below task_failure_min_tasks)",
            [
                _flower("task-succeeded", "lcs", "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1x20"),
                _flower("task-failed", "lcs", "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1x20"),
            ],
            "30m",
        ),
    ],
    "CeleryWorkerPoolDown": [
        lambda m: Case(
            "every pool has a live worker",
            [
                *_up("flower", {"flower-1:http": "1x30"}),
                _online("small@worker-small-1"),
                _online("default@worker-default-1"),
                _online("large@worker-large-1"),
                _online("large@worker-large-2", "1 1 0x28"),
            ],
            "10m",
        ),
        lambda m: Case(
            "Flower itself is down (MetricsTargetDown's job, not every pool's)",
            _up("flower", {"flower-1:http": "0x30"}),
            "10m",
        ),
    ],
    "PostgresDown": [lambda m: Case("pg_up 1", [(f"pg_up{{{PG}}}", "1x30")], "10m")],
    "PostgresConnectionsNearLimit": [
        lambda m: Case(
            "50 of 100 connections",
            [
                (f'pg_stat_activity_count{{{PG},datname="hacelery",state="idle"}}', "50x30"),
                (f"pg_settings_max_connections{{{PG}}}", "100x30"),
            ],
            "10m",
        )
    ],
    "PostgresReplicationSlotRetainingWal": [
        lambda m: Case(
            "the slot holds 100 MB",
            [
                (
                    f'pg_replication_slots_pg_wal_lsn_diff{{{PG},slot_name="pghoard",database=""}}',
                    "1e8x30",
                )
            ],
            "20m",
        )
    ],
    "BackupDaemonDown": [
        lambda m: Case("pghoard answers", [(f"backup_daemon_up{{{BK}}}", "1x30")], "20m")
    ],
    "BackupBasebackupTooOld": [
        lambda m: Case(
            "a base backup every minute",
            [
                (f"backup_newest_basebackup_start_timestamp_seconds{{{BK}}}", "0+60x1700"),
                (f"backup_daemon_start_timestamp_seconds{{{BK}}}", "0x1700"),
            ],
            "27h",
        )
    ],
    "BackupWalArchivingStalled": [
        lambda m: Case(
            "a WAL segment every minute",
            [
                (f"backup_last_wal_upload_timestamp_seconds{{{BK}}}", "0+60x80"),
                (f"backup_daemon_start_timestamp_seconds{{{BK}}}", "0x80"),
            ],
            "70m",
        )
    ],
    "BackupAlertFile": [
        lambda m: Case(
            "no alert file",
            [(f'backup_alert_file_present{{{BK},file="authentication_error"}}', "0x30")],
            "10m",
        )
    ],
    "WebErrorRatioHigh": [
        lambda m: Case(
            "1 error in 61, and failing readiness probes do not count",
            [
                _requests("/api/jobs", "202", "0+60x30"),
                _requests("/api/jobs", "503", "0+1x30"),
                _requests("/readyz", "503", "0+600x30", method="GET"),
            ],
            "20m",
        ),
        lambda m: Case(
            "all errors but almost no traffic",
            [_requests("/api/jobs", "500", "0+1x30")],
            "20m",
        ),
    ],
    "WebDependencyUnavailable": [
        lambda m: Case(
            "one pod loses the database, the other still reaches it",
            _dependency("database", {"web-1": "1x5 0x25", "web-2": "1x30"}),
            "10m",
        ),
        lambda m: Case(
            "a one-minute broker blip",
            _dependency("broker", {"web-1": "1x5 0x1 1x24", "web-2": "1x5 0x1 1x24"}),
            "10m",
        ),
    ],
    "WebLatencyP99High": [
        lambda m: Case(
            "every request under 0.5 s",
            [
                _bucket("0.5", "0+60x40"),
                _bucket("5", "0+60x40"),
                _bucket("+Inf", "0+60x40"),
                _requests("/api/jobs", "202", "0+60x40"),
            ],
            "30m",
        )
    ],
    "MetricsTargetDown": [
        lambda m: Case(
            "every target answers",
            _up("web", {"web-1:metrics": "1x30"})
            + _up("flower", {"flower-1:http": "1x30"})
            + _up("rabbitmq-queues", {"rabbitmq-0:prometheus": "1x30"}),
            "10m",
        )
    ],
    "KedaScalerErrors": [
        lambda m: Case(
            "no scaler error",
            [
                (
                    'keda_scaler_detail_errors_total{job="keda-operator",instance="keda-operator-1:8080",'
                    'scaledObject="worker-small"}',
                    "0x40",
                )
            ],
            "30m",
        )
    ],
}
