"""Alert thresholds and the platform description: every bad value names the field, the value and
what is allowed, before any rule is generated."""

from __future__ import annotations

import pytest

from infra.observability import alerts
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion
from infra.validation import ArgsError

V4 = RabbitMQVersion.parse("4.3.4")


@pytest.mark.parametrize(
    ("build", "field", "fragment"),
    [
        (lambda: alerts.AlertThresholds(task_failure_ratio=1.5),
         "AlertThresholds.task_failure_ratio", "strictly between 0 and 1"),
        (lambda: alerts.AlertThresholds(task_failure_ratio="10%"),
         "AlertThresholds.task_failure_ratio", "e.g. 0.05"),
        (lambda: alerts.AlertThresholds(postgres_connections_ratio=0),
         "AlertThresholds.postgres_connections_ratio", "between 0 and 1"),
        (lambda: alerts.AlertThresholds(wal_max_age_seconds=3600.5),
         "AlertThresholds.wal_max_age_seconds", "whole number of seconds"),
        (lambda: alerts.AlertThresholds(basebackup_max_age_seconds=True),
         "AlertThresholds.basebackup_max_age_seconds", "whole number"),
        (lambda: alerts.AlertThresholds(web_p99_seconds=float("nan")),
         "AlertThresholds.web_p99_seconds", "0.01..600"),
        (lambda: alerts.AlertThresholds(replication_slot_max_wal_mib=1),
         "AlertThresholds.replication_slot_max_wal_mib", "16.."),
        (lambda: alerts.AlertThresholds(task_failure_min_tasks=0),
         "AlertThresholds.task_failure_min_tasks", "finished tasks, 1.."),
        (lambda: alerts.AlertThresholds(queue_limits=(alerts.QueueLimits(queue="small"),
                                                      alerts.QueueLimits(queue="small"))),
         "AlertThresholds.queue_limits", "one entry per queue"),
        (lambda: alerts.AlertThresholds(queue_limits=({"queue": "small"},)),
         "AlertThresholds.queue_limits", "QueueLimits("),
        (lambda: alerts.QueueLimits(queue="small", max_messages=0), "QueueLimits.max_messages",
         "messages for queue 'small'"),
        (lambda: alerts.QueueLimits(queue="small", max_wait_seconds=5),
         "QueueLimits.max_wait_seconds", "10..604800"),
        (lambda: alerts.QueueLimits(queue="bad queue"), "QueueLimits.queue", "queue name"),
        (lambda: PlatformMetrics(rabbitmq_version=V4, broker_replicas=2),
         "PlatformMetrics.broker_replicas", "odd number"),
        (lambda: PlatformMetrics(rabbitmq_version="4.3.4", broker_replicas=3),
         "PlatformMetrics.rabbitmq_version", "RabbitMQVersion"),
        (lambda: PlatformMetrics(rabbitmq_version=V4, broker_replicas=3, worker_queues=()),
         "PlatformMetrics.worker_queues", "distinct queue names"),
        (lambda: PlatformMetrics(rabbitmq_version=V4, broker_replicas=3,
                                 dead_letter_queue="small"),
         "PlatformMetrics.dead_letter_queue", "not also a worker queue"),
        (lambda: alerts.alert_rules(
            PlatformMetrics(rabbitmq_version=V4, broker_replicas=3),
            alerts.AlertThresholds(queue_limits=(alerts.QueueLimits(queue="tiny"),))),
         "AlertThresholds.queue_limits", "default, small, large"),
        (lambda: alerts.rule_groups([], for_scale=0), "rule_groups.for_scale", "0.001..10"),
        (lambda: alerts.rule_groups([], runbook_base="http://wiki/runbook"),
         "rule_groups.runbook_base", "https://"),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(build, field, fragment):
    with pytest.raises(ArgsError) as raised:
        build()
    assert raised.value.field == field
    assert fragment in str(raised.value)
    assert "got " in str(raised.value)


def test_defaults_follow_the_backup_readiness_limits():
    from infra.backup import PgHoardBackupArgs

    thresholds = alerts.AlertThresholds()
    hours = PgHoardBackupArgs.max_basebackup_age_hours
    assert thresholds.basebackup_max_age_seconds == hours * 3600
    assert thresholds.wal_max_age_seconds == PgHoardBackupArgs.max_wal_age_minutes * 60


def test_for_scale_shortens_every_for_and_nothing_else():
    metrics = PlatformMetrics(rabbitmq_version=V4, broker_replicas=3)
    rules = alerts.alert_rules(metrics, alerts.AlertThresholds())
    full = alerts.rule_groups(rules)
    short = alerts.rule_groups(rules, for_scale=0.05, evaluation_interval_seconds=1)
    pairs = [(a, b) for ga, gb in zip(full["groups"], short["groups"], strict=True)
             for a, b in zip(ga["rules"], gb["rules"], strict=True)]
    assert {a["expr"] == b["expr"] and a["labels"] == b["labels"] for a, b in pairs} == {True}
    node_down = next(b for a, b in pairs if a["alert"] == "RabbitMQNodeDown")
    assert node_down["for"] == "6s"
    assert {g["interval"] for g in short["groups"]} == {"1s"}


def test_thresholds_reach_the_expressions():
    metrics = PlatformMetrics(rabbitmq_version=V4, broker_replicas=5)
    thresholds = alerts.AlertThresholds(
        queue_limits=(alerts.QueueLimits(queue="large", max_messages=77, max_wait_seconds=123),),
        postgres_connections_ratio=0.65,
    )
    rules = {r.name: r for r in alerts.alert_rules(metrics, thresholds)}
    assert rules["RabbitMQNodeDown"].expr.endswith("< 5")
    assert rules["RabbitMQQuorumQueueBelowMajority"].expr.endswith("< 3")
    assert 'queue="large"}) > 77' in rules["CeleryQueueBacklog"].expr
    assert 'queue="small"}) > 10000' in rules["CeleryQueueBacklog"].expr
    assert rules["CeleryQueueWaitTooLong"].expr.count("> 123") == 1
    assert rules["PostgresConnectionsNearLimit"].expr.endswith("> 0.65")
