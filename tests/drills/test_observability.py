"""Observability drill: a real Prometheus and Alertmanager, fed by the generated files, page a
real receiver when the real platform breaks, and say so again when it recovers.

Runs ``drills.observability`` once (3-node RabbitMQ, PostgreSQL + pghoard, the web app, one
worker per queue, Flower, both exporters; ``for:`` scaled by 0.05, scrapes every 2 s) and prints
its report. Fault -> notification times are printed against the goal (``for:`` + 2 scrape
intervals), not asserted: they are measurements (``python -m drills.observability`` re-measures).
"""

from __future__ import annotations

import pytest

from drills.observability import DrillOptions, DrillReport, run_drill
from drills.observability.run import markdown
from drills.observability.services import prerequisites_missing

pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]

EXPECTED = {
    "RabbitMQNodeDown",
    "CeleryQueueWithoutConsumers",
    "CeleryWorkerPoolDown",
    "CeleryQueueBacklog",
    "BackupDaemonDown",
    "BackupWalArchivingStalled",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> DrillReport:
    missing = prerequisites_missing()
    if missing:
        pytest.fail(f"observability drill cannot run: {missing}")
    result = run_drill(DrillOptions(report_dir=tmp_path_factory.mktemp("observability")))
    print("\n" + markdown(result))
    return result


def test_a_healthy_platform_raises_no_alert(report):
    assert report.baseline_firing == []


def test_every_fault_reaches_the_receiver(report):
    assert {m.alertname for m in report.measurements} == EXPECTED
    undelivered = [m.alertname for m in report.measurements if m.delivered_after is None]
    assert undelivered == []
    # Delivered after the fault, never before it (a notification that predates the fault would
    # be a false alarm the drill mistook for its own).
    assert all(m.delivered_after >= 0 for m in report.measurements)


def test_every_alert_resolves_after_the_restore(report):
    unresolved = [m.alertname for m in report.measurements if m.resolved_after is None]
    assert unresolved == []


def test_every_dashboard_query_returns_data(report):
    assert report.dashboard_queries >= 20
    assert report.dashboard_empty == []


def test_notifications_carry_expanded_summaries_and_runbook_links(report):
    assert report.annotation_problems == []


def test_nothing_the_drill_started_is_left_running(report):
    assert report.leftover_processes == []
