"""Drill: a node killed while the scheduler publishes with a window loses no task.

``drills.scheduler_window`` with a short fault window (2,000 tasks at 500/s, the publishers'
node SIGKILLed 1.5 s in); the full-length report is ``python -m drills.scheduler_window``. Run
with ``-s`` to see the table (duplicates are printed, not bounded: at least once is the
contract; a resend keeps its task id).
"""

from __future__ import annotations

import pytest

from drills import scheduler_window
from drills.rabbitmq_cluster import LocalRabbitMQCluster

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]


def test_killing_the_publishers_node_mid_window_loses_no_task() -> None:
    cluster = LocalRabbitMQCluster(size=3)
    try:
        with cluster:
            result = scheduler_window.run(cluster, tasks=2000, rate=500.0, kill_after=1.5,
                                          window=100)
    finally:
        assert cluster.leftover_processes() == [], "the drill left processes behind"
    print(f"\n[window drill] RabbitMQ {cluster.version}\n{result.table()}")
    assert result.arrivals.lost == (), f"{len(result.arrivals.lost)} task(s) lost"
    assert result.arrivals.keys_with_several_ids == ()
    assert result.failovers >= 1, "no publisher lost its node: the kill came too late"
    assert result.arrivals.duplicates <= result.republished
