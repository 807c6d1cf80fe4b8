"""Alert rules as code: one generator for the stacks (GMP ``Rules``) and the drill (Prometheus).

Owns the platform's alerts: their PromQL, ``for:`` durations, severities, summaries and runbook
links, and the thresholds they compare against (``AlertThresholds``: frozen, validated, with
production defaults). ``alert_rules`` returns typed ``AlertRule`` objects; ``rule_groups`` turns
them into Prometheus rule groups (the dict a rule file or a GMP ``Rules.spec`` holds) with every
``for:`` multiplied by ``for_scale``, which is how the drill proves in seconds what production
waits minutes for.

Every alert carries ``severity`` (``critical``: users are or will shortly be affected, act now;
``warning``: act within the working day), ``component`` and a ``runbook_url`` pointing at its
entry in the README's runbook (``#<alertname lowercased>``; a test keeps both in step).

Design notes that recur below:
- ``(... or vector(0)) < N`` fires when the series vanish as well as when they report too few:
  a dead exporter must not look like a healthy one.
- Queue rules only watch the worker queues (Celery's own ``celery_delayed_*`` and pidbox queues
  legitimately hold messages without consumers).
- Quorum queues report no oldest-message age (see ``sources``), so "oldest message too old" is
  estimated as depth / acknowledgement rate: by Little's law, how long a message arriving now
  waits. It also fires when consumers exist but never acknowledge (stuck workers).

Does not own how rules reach an evaluator (``routing``) or where alerts are sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from infra.backup import PgHoardBackupArgs
from infra.observability import sources
from infra.observability.sources import PlatformMetrics, regex_alternatives
from infra.validation import ArgsError, check

Severity = Literal["critical", "warning"]
Scope = Literal["namespace", "cluster"]

RUNBOOK_DOCUMENT = "README.md"
"""Where the runbook lives; each alert links to ``#<alertname lowercased>`` in it."""

MIB = 1024 * 1024

# ------------------------------------------------------------------------------ thresholds


@dataclass(frozen=True, kw_only=True)
class QueueLimits:
    """Backlog limits of one worker queue."""

    queue: str
    max_messages: int = 10_000
    """Ready + unacknowledged messages above which the queue counts as backed up."""
    max_wait_seconds: int = 900
    """How long a message arriving now may wait (depth / acknowledgement rate)."""

    def __post_init__(self) -> None:
        check(
            isinstance(self.queue, str) and bool(re.match(r"^[A-Za-z0-9_.:-]{1,255}$", self.queue)),
            "QueueLimits.queue",
            self.queue,
            "a queue name (letters, digits, '_', '.', ':', '-')",
        )
        # Field names stay "QueueLimits.<field>" (stacks/config.py maps them to keys); the
        # queue goes into the message.
        _check_int("QueueLimits.max_messages", self.max_messages, 1, 100_000_000,
                   f"messages for queue {self.queue!r}")
        _check_int("QueueLimits.max_wait_seconds", self.max_wait_seconds, 10, 7 * 86400,
                   f"seconds for queue {self.queue!r}")


@dataclass(frozen=True, kw_only=True)
class AlertThresholds:
    """What counts as a problem. Every field has a production default and is validated."""

    queue_limits: tuple[QueueLimits, ...] = ()
    """Per-queue overrides; a worker queue without one gets ``QueueLimits(queue=...)``."""
    task_failure_ratio: float = 0.10
    """Share of a task's finished runs that failed (over 10 minutes) above which it alerts."""
    task_failure_min_tasks: int = 20
    """...but only with at least this many finished runs in the window (no alert on 1 of 2)."""
    postgres_connections_ratio: float = 0.8
    """Connections / max_connections above which new clients are close to being refused."""
    replication_slot_max_wal_mib: int = 2048
    """WAL a replication slot may hold back before it alerts (the backup stream is behind)."""
    basebackup_max_age_seconds: int = int(PgHoardBackupArgs.max_basebackup_age_hours * 3600)
    """Same limit as the backup pod's readiness check (PgHoardBackupArgs)."""
    wal_max_age_seconds: int = int(PgHoardBackupArgs.max_wal_age_minutes * 60)
    """Same limit as the backup pod's readiness check (PgHoardBackupArgs)."""
    web_error_ratio: float = 0.05
    """Share of answered requests (probes excluded) that are 5xx."""
    web_p99_seconds: float = 2.0
    """99th percentile of request latency (probes excluded)."""
    web_min_requests_per_second: float = 0.05
    """Below this traffic the web ratios are noise (3 requests a minute) and do not alert."""

    def __post_init__(self) -> None:
        owner = "AlertThresholds"
        check(
            isinstance(self.queue_limits, tuple)
            and all(isinstance(limit, QueueLimits) for limit in self.queue_limits),
            f"{owner}.queue_limits",
            self.queue_limits,
            "a tuple of QueueLimits(queue=..., max_messages=..., max_wait_seconds=...)",
        )
        queues = [limit.queue for limit in self.queue_limits]
        duplicates = sorted({q for q in queues if queues.count(q) > 1})
        check(not duplicates, f"{owner}.queue_limits", duplicates, "one entry per queue")
        _check_ratio(f"{owner}.task_failure_ratio", self.task_failure_ratio)
        _check_int(f"{owner}.task_failure_min_tasks", self.task_failure_min_tasks, 1, 1_000_000,
                   "finished tasks")
        _check_ratio(f"{owner}.postgres_connections_ratio", self.postgres_connections_ratio)
        _check_int(f"{owner}.replication_slot_max_wal_mib", self.replication_slot_max_wal_mib,
                   16, 16 * 1024 * 1024, "MiB")
        _check_int(f"{owner}.basebackup_max_age_seconds", self.basebackup_max_age_seconds,
                   10, 60 * 86400, "seconds")
        _check_int(f"{owner}.wal_max_age_seconds", self.wal_max_age_seconds, 10, 7 * 86400,
                   "seconds")
        _check_ratio(f"{owner}.web_error_ratio", self.web_error_ratio)
        _check_number(f"{owner}.web_p99_seconds", self.web_p99_seconds, 0.01, 600, "seconds")
        _check_number(f"{owner}.web_min_requests_per_second", self.web_min_requests_per_second,
                      0, 100_000, "requests per second")

    def limits_for(self, queue: str) -> QueueLimits:
        for limit in self.queue_limits:
            if limit.queue == queue:
                return limit
        return QueueLimits(queue=queue)


def _check_int(field_name: str, value: Any, low: int, high: int, unit: str) -> None:
    check(
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
        field_name,
        value,
        f"a whole number of {unit}, {low}..{high}",
    )


def _check_number(field_name: str, value: Any, low: float, high: float, unit: str) -> None:
    check(
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high,
        field_name,
        value,
        f"a number of {unit}, {low:g}..{high:g}",
    )


def _check_ratio(field_name: str, value: Any) -> None:
    check(
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value < 1,
        field_name,
        value,
        "a ratio strictly between 0 and 1 (e.g. 0.05 for 5 %)",
    )


# --------------------------------------------------------------------------------- rules


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    """One alert. ``expr`` is PromQL; ``for_seconds`` is the production ``for:``."""

    name: str
    component: str
    severity: Severity
    for_seconds: int
    expr: str
    summary: str
    description: str
    labels: Mapping[str, str] = field(default_factory=dict)
    scope: Scope = "namespace"
    """``cluster``: the rule reads metrics of another namespace (KEDA's), so on GKE it goes into
    a ``ClusterRules`` object; ``namespace`` rules are scoped to the platform's namespace."""

    @property
    def runbook_anchor(self) -> str:
        return self.name.lower()


def alert_rules(metrics: PlatformMetrics, thresholds: AlertThresholds) -> list[AlertRule]:
    """Every alert of the platform, in runbook order."""
    unknown = [q.queue for q in thresholds.queue_limits if q.queue not in metrics.worker_queues]
    if unknown:
        raise ArgsError(
            "AlertThresholds.queue_limits",
            unknown,
            f"limits for worker queues only ({', '.join(metrics.worker_queues)})",
        )
    return [
        *_broker_rules(metrics),
        *_queue_rules(metrics, thresholds),
        *_worker_rules(metrics, thresholds),
        *_database_rules(metrics, thresholds),
        *_backup_rules(metrics, thresholds),
        *_web_rules(metrics, thresholds),
        *_monitoring_rules(metrics),
        *(_autoscaling_rules(metrics) if metrics.keda_enabled else []),
    ]


def _broker_rules(m: PlatformMetrics) -> list[AlertRule]:
    job = m.jobs.rabbitmq
    up = f'up{{job="{job}"}}'
    replicas = m.broker_replicas
    links = (
        "count by (instance) "
        f'(erlang_vm_dist_node_state{{job="{job}",peer!~"rabbitmqcli.*"}} == 3)'
    )
    return [
        AlertRule(
            name="RabbitMQNodeDown",
            component="broker",
            severity="critical",
            for_seconds=120,
            expr=f"(sum({up}) or vector(0)) < {replicas}",
            summary=f"RabbitMQ: {{{{ $value }}}} of {replicas} broker nodes answer",
            description=(
                f"Only {{{{ $value }}}} of the {replicas} RabbitMQ nodes answered their metrics "
                "scrape for 2 minutes. Quorum queues keep working while a majority "
                f"({m.quorum_majority}) is up, but one more loss stops publishing."
            ),
        ),
        AlertRule(
            name="RabbitMQClusterPartitioned",
            component="broker",
            severity="critical",
            # Longer than RabbitMQNodeDown's: when a node dies, that alert is firing (and
            # inhibits this one in Alertmanager) before the missing links would page as well.
            for_seconds=180,
            # A node with no link at all reports no dist series: `or` gives it a 0.
            expr=(
                f"({links} or on (instance) ((max by (instance) ({up}) == 1) * 0)) "
                f"< {replicas - 1}"
            ),
            summary="RabbitMQ node {{ $labels.instance }} sees {{ $value }} peers",
            description=(
                "Broker node {{ $labels.instance }} has {{ $value }} established Erlang "
                f"distribution links to its {replicas - 1} peers: the cluster is partitioned "
                "(or a peer is down, which RabbitMQNodeDown reports and inhibits this alert)."
            ),
        ),
        AlertRule(
            name="RabbitMQMemoryAlarm",
            component="broker",
            severity="critical",
            for_seconds=120,
            expr=(
                "max by (instance) "
                f'(rabbitmq_alarms_memory_used_watermark{{job="{job}"}}) > 0'
            ),
            summary="RabbitMQ memory alarm on {{ $labels.instance }}: publishers are blocked",
            description=(
                "Node {{ $labels.instance }} is above its memory high watermark and blocks "
                "every publishing connection in the cluster; new jobs get 503 until it clears."
            ),
        ),
        AlertRule(
            name="RabbitMQDiskAlarm",
            component="broker",
            severity="critical",
            for_seconds=60,
            expr=(
                "max by (instance) "
                f'(rabbitmq_alarms_free_disk_space_watermark{{job="{job}"}}) > 0'
            ),
            summary="RabbitMQ disk alarm on {{ $labels.instance }}: publishers are blocked",
            description=(
                "Node {{ $labels.instance }} has less free disk than disk_free_limit and blocks "
                "every publishing connection in the cluster until space is freed."
            ),
        ),
        AlertRule(
            name="RabbitMQQuorumQueueBelowMajority",
            component="broker",
            severity="critical",
            for_seconds=60,
            expr=f"{m.rabbitmq.quorum_members_up(m.jobs.rabbitmq_queues)} < {m.quorum_majority}",
            summary="Quorum queue {{ $labels.queue }} has {{ $value }} member(s) up",
            description=(
                "Only {{ $value }} member(s) of quorum queue {{ $labels.queue }} (vhost "
                f"{{{{ $labels.vhost }}}}) are up; it needs {m.quorum_majority} of "
                f"{replicas} to accept or deliver messages, so it is unavailable."
            ),
        ),
    ]


def _queue_rules(m: PlatformMetrics, t: AlertThresholds) -> list[AlertRule]:
    job = m.jobs.rabbitmq_queues

    def per_queue(metric: str, selector: str) -> str:
        return f'max by (vhost, queue) ({metric}{{job="{job}",{selector}}})'

    def depth(selector: str) -> str:
        return per_queue("rabbitmq_detailed_queue_messages", selector)

    def consumers(selector: str) -> str:
        return per_queue("rabbitmq_detailed_queue_consumers", selector)

    workers = f'queue=~"{regex_alternatives(m.worker_queues)}"'
    backlog, wait = [], []
    for queue in m.worker_queues:
        limits = t.limits_for(queue)
        one = f'queue="{queue}"'
        backlog.append(f"{depth(one)} > {limits.max_messages}")
        acks = m.rabbitmq.acknowledged_rate(job, one, "5m")
        # No ack series at all (never consumed) counts as rate 0, not as "no data".
        rate = f"clamp_min(({acks}) or on (vhost, queue) ({depth(one)} * 0), 0.001)"
        wait.append(f"{depth(one)} / on (vhost, queue) {rate} > {limits.max_wait_seconds}")
    dead = f'queue="{m.dead_letter_queue}"'
    return [
        AlertRule(
            name="CeleryQueueWithoutConsumers",
            component="queues",
            severity="critical",
            for_seconds=120,
            expr=f"{depth(workers)} > 0 and on (vhost, queue) {consumers(workers)} == 0",
            summary="Queue {{ $labels.queue }} holds {{ $value }} messages and has no consumer",
            description=(
                "Nothing consumes queue {{ $labels.queue }} (vhost {{ $labels.vhost }}) while "
                "{{ $value }} messages wait: its worker pool is down, scaled to zero and not "
                "scaling up, or its workers lost their broker connection."
            ),
        ),
        AlertRule(
            name="CeleryQueueBacklog",
            component="queues",
            severity="warning",
            for_seconds=600,
            expr=" or ".join(f"({part})" for part in backlog),
            summary="Queue {{ $labels.queue }} has {{ $value }} messages waiting",
            description=(
                "Queue {{ $labels.queue }} has held more messages than its limit for 10 "
                "minutes ({{ $value }} now): work arrives faster than the pool finishes it."
            ),
        ),
        AlertRule(
            name="CeleryQueueWaitTooLong",
            component="queues",
            severity="warning",
            for_seconds=300,
            expr=" or ".join(f"({part})" for part in wait),
            summary="A message entering {{ $labels.queue }} now waits about "
            "{{ $value | humanizeDuration }}",
            description=(
                "At the current acknowledgement rate, queue {{ $labels.queue }} needs about "
                "{{ $value | humanizeDuration }} to reach a message published now (depth / "
                "acks per second; quorum queues report no oldest-message age). Workers are too "
                "few, too slow, or stuck without acknowledging."
            ),
        ),
        AlertRule(
            name="CeleryDeadLetteredMessages",
            component="queues",
            severity="warning",
            for_seconds=300,
            expr=f"{depth(dead)} > 0",
            summary="{{ $value }} poison message(s) parked in " + m.dead_letter_queue,
            description=(
                f"Queue {m.dead_letter_queue} holds {{{{ $value }}}} message(s) that were "
                "delivered more often than the delivery limit (their worker kept crashing) and "
                "were moved aside. They wait for a human decision."
            ),
        ),
    ]


def _worker_rules(m: PlatformMetrics, t: AlertThresholds) -> list[AlertRule]:
    job = m.jobs.flower
    finished = f'flower_events_total{{job="{job}",type=~"task-succeeded|task-failed"}}'
    failed = f'flower_events_total{{job="{job}",type="task-failed"}}'
    pools = []
    for queue in m.worker_queues:
        online = (
            "sum(flower_worker_online"
            f'{{job="{job}",worker=~"{regex_alternatives([queue])}@.*"}})'
        )
        pools.append(f'label_replace(({online} or vector(0)) < 1, "pool", "{queue}", "", "")')
    return [
        AlertRule(
            name="CeleryTaskFailureRatioHigh",
            component="workers",
            severity="warning",
            for_seconds=600,
            expr=(
                f"(sum by (task) (rate({failed}[10m])) / sum by (task) (rate({finished}[10m])) "
                f"> {t.task_failure_ratio}) and on (task) "
                f"sum by (task) (increase({finished}[10m])) >= {t.task_failure_min_tasks}"
            ),
            summary="Task {{ $labels.task }}: {{ $value | humanizePercentage }} of runs fail",
            description=(
                "{{ $value | humanizePercentage }} of the runs of task {{ $labels.task }} that "
                "finished in the last 10 minutes failed (limit "
                f"{t.task_failure_ratio:.0%})."
            ),
        ),
        AlertRule(
            name="CeleryWorkerPoolDown",
            component="workers",
            severity="critical",
            for_seconds=120,
            # Flower down is reported by MetricsTargetDown, not as every pool being down.
            expr=(
                "(" + " or ".join(pools) + ") "
                f'unless on () absent(up{{job="{job}"}} == 1)'
            ),
            summary="Worker pool {{ $labels.pool }} has no live worker",
            description=(
                "Flower has seen no heartbeat from any worker of pool {{ $labels.pool }} "
                "(hostname {{ $labels.pool }}@...) for 2 minutes: tasks routed to it wait."
            ),
        ),
    ]


def _database_rules(m: PlatformMetrics, t: AlertThresholds) -> list[AlertRule]:
    job = m.jobs.postgres
    retained = t.replication_slot_max_wal_mib * MIB
    return [
        AlertRule(
            name="PostgresDown",
            component="database",
            severity="critical",
            for_seconds=60,
            expr=f'(max(pg_up{{job="{job}"}}) or vector(0)) < 1',
            summary="PostgreSQL does not answer its exporter",
            description=(
                "The postgres exporter could not connect to PostgreSQL (or the exporter itself, "
                "a sidecar of the database pod, is down) for a minute: jobs cannot be stored."
            ),
        ),
        AlertRule(
            name="PostgresConnectionsNearLimit",
            component="database",
            severity="warning",
            for_seconds=300,
            expr=(
                f'sum by (instance) (pg_stat_activity_count{{job="{job}"}}) / on (instance) '
                f'max by (instance) (pg_settings_max_connections{{job="{job}"}}) '
                f"> {t.postgres_connections_ratio}"
            ),
            summary="PostgreSQL uses {{ $value | humanizePercentage }} of max_connections",
            description=(
                "{{ $value | humanizePercentage }} of max_connections are in use (limit "
                f"{t.postgres_connections_ratio:.0%}); at 100 % new connections are refused."
            ),
        ),
        AlertRule(
            name="PostgresReplicationSlotRetainingWal",
            component="database",
            severity="warning",
            for_seconds=600,
            expr=(
                "max by (instance, slot_name) "
                f'(pg_replication_slots_pg_wal_lsn_diff{{job="{job}"}}) > {retained}'
            ),
            summary="Replication slot {{ $labels.slot_name }} holds {{ $value | humanize1024 }}B "
            "of WAL",
            description=(
                "Slot {{ $labels.slot_name }} keeps {{ $value | humanize1024 }}B of WAL on the "
                f"database volume (limit {t.replication_slot_max_wal_mib} MiB): its consumer "
                "(the backup's WAL stream) is behind or gone. At max_slot_wal_keep_size the "
                "slot is invalidated and the backup chain breaks."
            ),
        ),
    ]


def _backup_rules(m: PlatformMetrics, t: AlertThresholds) -> list[AlertRule]:
    job = m.jobs.backup

    def series(name: str) -> str:
        return f'{name}{{job="{job}"}}'

    start = series(sources.BACKUP_DAEMON_START)
    return [
        AlertRule(
            name="BackupDaemonDown",
            component="backups",
            severity="critical",
            for_seconds=300,
            expr=f"(max({series(sources.BACKUP_DAEMON_UP)}) or vector(0)) < 1",
            summary="pghoard does not answer: backups are not being taken or checked",
            description=(
                "The backup exporter cannot reach pghoard's API (or the exporter is down) for 5 "
                "minutes: no WAL is streamed and no base backup is taken."
            ),
        ),
        AlertRule(
            name="BackupBasebackupTooOld",
            component="backups",
            severity="critical",
            for_seconds=600,
            # No base backup yet: the clock runs from the daemon's start.
            expr=(
                f"time() - max by (site) ({series(sources.BACKUP_NEWEST_BASEBACKUP)} or {start}) "
                f"> {t.basebackup_max_age_seconds}"
            ),
            summary="Newest base backup of {{ $labels.site }} is {{ $value | humanizeDuration }} "
            "old",
            description=(
                "The newest base backup of site {{ $labels.site }} started "
                "{{ $value | humanizeDuration }} ago (limit "
                f"{_human_seconds(t.basebackup_max_age_seconds)}): a restore would have to "
                "replay ever more WAL, and if WAL is lost too, data is."
            ),
        ),
        AlertRule(
            name="BackupWalArchivingStalled",
            component="backups",
            severity="critical",
            for_seconds=300,
            expr=(
                f"time() - max by (site) ({series(sources.BACKUP_LAST_WAL_UPLOAD)} or {start}) "
                f"> {t.wal_max_age_seconds}"
            ),
            summary="No WAL of {{ $labels.site }} stored for {{ $value | humanizeDuration }}",
            description=(
                "pghoard stored no WAL segment of site {{ $labels.site }} for "
                "{{ $value | humanizeDuration }} (limit "
                f"{_human_seconds(t.wal_max_age_seconds)}): every commit since then exists only "
                "on the database volume. (A database idle for longer writes no WAL either.)"
            ),
        ),
        AlertRule(
            name="BackupAlertFile",
            component="backups",
            severity="critical",
            for_seconds=60,
            expr=f"max by (site, file) ({series(sources.BACKUP_ALERT_FILE)}) > 0",
            summary="pghoard raised {{ $labels.file }} for {{ $labels.site }}",
            description=(
                "pghoard wrote the alert file {{ $labels.file }}: uploads or configuration "
                "failed. pghoard never removes it; fix the cause, then delete the file."
            ),
        ),
    ]


def _web_rules(m: PlatformMetrics, t: AlertThresholds) -> list[AlertRule]:
    job = m.jobs.web
    not_probe = f'route!~"{regex_alternatives(sources.WEB_PROBE_ROUTES)}"'
    requests = f'{sources.WEB_REQUESTS}{{job="{job}",{not_probe}}}'
    errors = f'{sources.WEB_REQUESTS}{{job="{job}",{not_probe},status=~"5.."}}'
    buckets = f'{sources.WEB_REQUEST_DURATION}_bucket{{job="{job}",{not_probe}}}'
    busy = f"sum(rate({requests}[5m])) > {t.web_min_requests_per_second}"
    return [
        AlertRule(
            name="WebErrorRatioHigh",
            component="web",
            severity="critical",
            for_seconds=300,
            expr=(
                f"(sum(rate({errors}[5m])) / sum(rate({requests}[5m])) > {t.web_error_ratio}) "
                f"and {busy}"
            ),
            summary="{{ $value | humanizePercentage }} of web requests fail with 5xx",
            description=(
                "{{ $value | humanizePercentage }} of the web app's answers (probes excluded) "
                f"in the last 5 minutes were 5xx (limit {t.web_error_ratio:.0%})."
            ),
        ),
        AlertRule(
            # Readiness no longer follows the broker and the database (a shared outage must not
            # take every web pod out of the load balancer): this alert says what the pods see.
            name="WebDependencyUnavailable",
            component="web",
            severity="critical",
            for_seconds=120,
            expr=(
                f'max by (dependency) ({sources.WEB_DEPENDENCY_UP}{{job="{job}"}}) == 0'
            ),
            summary="No web pod reaches the {{ $labels.dependency }}",
            description=(
                "Every web pod's status check has failed to reach the {{ $labels.dependency }} "
                "for 2 minutes: the page shows its banner; with the broker gone submissions "
                "answer 503, with the database gone the job list does too."
            ),
        ),
        AlertRule(
            name="WebLatencyP99High",
            component="web",
            severity="warning",
            for_seconds=600,
            expr=(
                f"(histogram_quantile(0.99, sum by (le) (rate({buckets}[5m]))) "
                f"> {t.web_p99_seconds}) and {busy}"
            ),
            summary="Web p99 latency is {{ $value | humanizeDuration }}",
            description=(
                "1 % of the web app's requests (probes excluded) took longer than "
                "{{ $value | humanizeDuration }} over 5 minutes "
                f"(limit {t.web_p99_seconds:g} s)."
            ),
        ),
    ]


def _monitoring_rules(m: PlatformMetrics) -> list[AlertRule]:
    # Broker nodes, PostgreSQL and pghoard have their own "down" alerts (which also fire when
    # their exporter vanishes); these are the sources whose loss would only blind other alerts.
    jobs = [m.jobs.rabbitmq_queues, m.jobs.flower, m.jobs.web]
    absent = " or ".join(f'absent(up{{job="{job}"}})' for job in jobs)
    return [
        AlertRule(
            name="MetricsTargetDown",
            component="monitoring",
            severity="warning",
            for_seconds=300,
            expr=f'up{{job=~"{regex_alternatives(jobs)}"}} == 0 or {absent}',
            summary="Metrics of {{ $labels.job }} are not collected",
            description=(
                "Scraping {{ $labels.job }} ({{ $labels.instance }}) failed, or no target of it "
                "exists, for 5 minutes: the alerts that read it cannot fire."
            ),
        ),
    ]


def _autoscaling_rules(m: PlatformMetrics) -> list[AlertRule]:
    job = m.jobs.keda
    return [
        AlertRule(
            name="KedaScalerErrors",
            component="autoscaling",
            severity="warning",
            for_seconds=600,
            expr=(
                "sum by (scaledObject) "
                f'(rate(keda_scaler_detail_errors_total{{job="{job}"}}[5m])) > 0'
            ),
            summary="KEDA cannot read the queue depth for {{ $labels.scaledObject }}",
            description=(
                "KEDA's scaler for {{ $labels.scaledObject }} has been failing for 10 minutes: "
                "the pool keeps its current size whatever the queue holds."
            ),
            scope="cluster",
        ),
    ]


# ---------------------------------------------------------------------------- rendering


def format_duration(seconds: int) -> str:
    """A Prometheus duration: ``2m``, ``90s``, ``1h``."""
    if seconds == 0:
        return "0s"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _human_seconds(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def scaled_for(rule: AlertRule, for_scale: float) -> str:
    return format_duration(max(1, round(rule.for_seconds * for_scale)))


def rule_groups(
    rules: list[AlertRule],
    *,
    for_scale: float = 1.0,
    evaluation_interval_seconds: int = 30,
    runbook_base: str = RUNBOOK_DOCUMENT,
    scope: Scope | None = None,
    with_annotations: bool = True,
) -> dict[str, Any]:
    """Prometheus rule groups, one per component: ``{"groups": [...]}``.

    ``for_scale`` multiplies every ``for:`` (1 in production; the drill shortens them).
    ``scope`` keeps only namespace- or cluster-scoped rules (GKE splits them into ``Rules`` and
    ``ClusterRules``). ``with_annotations=False`` is for promtool unit tests, which compare
    annotations verbatim; the templates are still checked by ``promtool check rules``.
    """
    check(
        isinstance(for_scale, int | float) and 0.001 <= for_scale <= 10,
        "rule_groups.for_scale",
        for_scale,
        "a factor 0.001..10 applied to every for: duration (1 in production)",
    )
    check(
        isinstance(evaluation_interval_seconds, int) and 1 <= evaluation_interval_seconds <= 600,
        "rule_groups.evaluation_interval_seconds",
        evaluation_interval_seconds,
        "1..600 seconds",
    )
    check(
        isinstance(runbook_base, str)
        and (runbook_base.endswith(".md") or runbook_base.startswith("https://")),
        "rule_groups.runbook_base",
        runbook_base,
        "the README's path or an https:// URL of it (the #anchor is added per alert)",
    )
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    check(not duplicates, "rule_groups.rules", duplicates, "one rule per alert name")
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        if scope is not None and rule.scope != scope:
            continue
        entry: dict[str, Any] = {
            "alert": rule.name,
            "expr": rule.expr,
            "for": scaled_for(rule, for_scale),
            "labels": {"severity": rule.severity, "component": rule.component, **rule.labels},
        }
        if with_annotations:
            entry["annotations"] = {
                "summary": rule.summary,
                "description": rule.description,
                "runbook_url": f"{runbook_base}#{rule.runbook_anchor}",
            }
        groups.setdefault(rule.component, []).append(entry)
    return {
        "groups": [
            {
                "name": f"ha-celery-{component}",
                "interval": format_duration(evaluation_interval_seconds),
                "rules": entries,
            }
            for component, entries in groups.items()
        ]
    }


def render_rules_yaml(groups: dict[str, Any]) -> str:
    """A Prometheus rule file."""
    header = "# Generated by infra/observability/alerts.py; edit the generator, not this file.\n"
    # No line wrapping: a PromQL expression or template reads as one line, as people write them.
    return header + yaml.safe_dump(groups, sort_keys=False, width=1_000_000)
