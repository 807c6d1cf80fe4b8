"""The faults of the failover drill: what each scenario does to the cluster or a worker.

Owns one function per scenario (``FAULTS``): each waits for its moment, causes the fault, marks
it on the run's timeline, and brings the cluster back. Does not measure or report.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from drills.celery_failover.measure import InterruptedTask, Row
from drills.celery_failover.options import TASK_QUEUE, wait_until
from drills.celery_failover.processes import ManagedProcess
from drills.rabbitmq_cluster import node_short_name

INTERRUPTED_TASK_SECONDS = 3.0
"""How long the task the worker-kill scenario interrupts works (so it is surely mid-task)."""

if TYPE_CHECKING:
    from drills.celery_failover.run import DrillRun


def fault_node_kill(run: DrillRun) -> None:
    node = run.connected_node(run.workers[0])
    for worker in run.workers[1:]:
        if run.connected_node(worker) != node:
            run.notes.append(f"{worker.name} was connected to {run.connected_node(worker)}")
    leader = run.cluster.quorum_leader(TASK_QUEUE)
    run.notes.append(f"workers connected to {node}; queue leader {leader}")
    run.wait_for_completed_fraction(run.scenario.fault_at_fraction)
    at = time.time()
    run.cluster.kill(node)
    run.mark(f"SIGKILL {node_short_name(node)}", fault=True, at=at)
    time.sleep(run.options.restart_after_seconds)
    run.cluster.start(node)
    run.mark(f"start {node_short_name(node)}")
    run.cluster.await_rejoined(node)
    run.mark(f"{node_short_name(node)} rejoined")
    for worker in run.workers:
        run.notes.append(f"{worker.name} now connected to {run.connected_node(worker)}")


def fault_leader_kill(run: DrillRun) -> None:
    leader = run.cluster.quorum_leader(TASK_QUEUE)
    connected = {run.connected_node(worker) for worker in run.workers}
    run.notes.append(f"queue leader {leader}; workers connected to {sorted(connected)}")
    if leader in connected:
        run.notes.append("the leader is also the workers' node: this run is a node kill too")
    run.wait_for_completed_fraction(run.scenario.fault_at_fraction)
    at = time.time()
    run.cluster.kill(leader)
    run.mark(f"SIGKILL leader {node_short_name(leader)}", fault=True, at=at)
    new_leader = run.cluster.quorum_leader(TASK_QUEUE)
    run.mark(f"new leader {node_short_name(new_leader)}")
    time.sleep(run.options.restart_after_seconds)
    run.cluster.start(leader)
    run.mark(f"start {node_short_name(leader)}")
    run.cluster.await_rejoined(leader)
    run.mark(f"{node_short_name(leader)} rejoined")


def fault_rolling_restart(run: DrillRun) -> None:
    order = [node.name for node in reversed(run.cluster.nodes)]
    run.notes.append(
        f"workers connected to {run.connected_node(run.workers[0])}; restart order "
        f"{', '.join(node_short_name(name) for name in order)}"
    )
    run.wait_for_completed_fraction(run.scenario.fault_at_fraction)
    # The fault is each node's SIGTERM (what clients feel); the drain before it is preparation
    # (measuring from it would credit the drain time to the recovery).
    durations = run.cluster.rolling_restart(
        on_node_draining=lambda name: run.mark(f"drain {node_short_name(name)}"),
        on_node_stopping=lambda name: run.mark(f"SIGTERM {node_short_name(name)}", fault=True),
        on_node_restarted=lambda name: run.mark(f"{node_short_name(name)} rejoined"),
    )
    run.notes.append(
        "per node SIGTERM -> rejoined: " + ", ".join(f"{seconds:.1f} s" for seconds in durations)
    )


def fault_worker_kill(run: DrillRun) -> None:
    from app.celery_app import make_celery
    from app.settings import AppSettings

    run.wait_for_completed_fraction(run.scenario.fault_at_fraction)
    # A task long enough to be certainly in the middle of it when the worker dies; the
    # drill sends it itself to know its id and find the worker that runs it.
    client = make_celery(AppSettings.from_environ(run.environment("drill-client")))
    key = f"{run.prefix}-interrupted"
    task_id = str(uuid.uuid4())
    client.send_task("record", args=(key, INTERRUPTED_TASK_SECONDS), queue=TASK_QUEUE,
                     task_id=task_id)

    def runner() -> ManagedProcess | None:
        row = run.completions.row(key)
        if row is None or row.starts < 1:
            return None
        for worker in run.workers:
            if f"record[{task_id}] received" in worker.log():
                return worker
        return None

    victim = wait_until(runner, timeout=60, what="the long task to start")
    assert isinstance(victim, ManagedProcess)
    at = time.time()
    victim.kill_group()
    run.mark(f"SIGKILL {victim.name.split('@')[-1]}", fault=True, at=at)
    run.workers.remove(victim)
    # The task's own redelivery: when it starts again (observed every 20 ms), not when any
    # task completes (the other worker keeps completing the rest all along).
    restarted = wait_until(
        lambda: (found := run.completions.row(key)) is not None and found.starts >= 2,
        timeout=60,
        what="the interrupted task to be delivered again",
        interval=0.02,
    )
    redelivered_after = time.time() - at if restarted else None
    run.mark("interrupted task started again")
    time.sleep(max(0.0, run.options.restart_after_seconds - (time.time() - at)))
    run.mark(f"start {victim.name}")
    run.workers.append(run.start_worker(victim.name))
    run.mark(f"{victim.name} ready")
    row = wait_until(
        lambda: (found := run.completions.row(key)) is not None and found.executions >= 1 and found,
        timeout=60,
        what="the interrupted task to complete",
    )
    assert isinstance(row, Row)
    time.sleep(1.0)  # a second completion still in flight would show up now
    row = run.completions.row(key) or row
    run.interrupted = InterruptedTask(
        starts=row.starts,
        completions=row.executions,
        redelivered_after_seconds=redelivered_after,
        completed_after_seconds=(row.first_completed_at or at) - at,
    )
    run.notes.append(
        f"interrupted task: started {row.starts}x, completed {row.executions}x, delivered "
        f"again {redelivered_after:.2f} s after the kill, completed "
        f"{(row.first_completed_at or at) - at:.2f} s after it ({INTERRUPTED_TASK_SECONDS:g} s "
        "of work)"
    )


FAULTS: dict[str, Callable[[DrillRun], None]] = {
    "node-kill": fault_node_kill,
    "leader-kill": fault_leader_kill,
    "rolling-restart": fault_rolling_restart,
    "worker-kill": fault_worker_kill,
}


