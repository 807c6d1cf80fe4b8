"""The silent-fault drill's scenarios and options: which node goes silent, how, for how long.

Owns :data:`SCENARIOS` (one :class:`SilentScenario` per fault: how it starts and ends on a
:class:`~drills.netns_cluster.NamespacedRabbitMQCluster`, and where the clients connect relative
to the queue's Raft leader) and :class:`SilentOptions` (the fault window, the load). Does not run
anything (``run``) or report (``report``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drills.celery_failover.options import DEFAULT_REPORT_DIR, MIN_TASKS
from drills.netns_cluster import NamespacedRabbitMQCluster

FaultAction = Callable[[NamespacedRabbitMQCluster, str], float]


def _kill(cluster: NamespacedRabbitMQCluster, node: str) -> float:
    at = time.time()  # the drill's timeline is on the wall clock (cluster.kill's is monotonic)
    cluster.kill(node)
    return at


def _restart(cluster: NamespacedRabbitMQCluster, node: str) -> float:
    cluster.start(node)
    return time.time()


@dataclass(frozen=True, kw_only=True)
class SilentScenario:
    name: str
    description: str
    """One line for the table: what happens to which node."""
    clients_on_leader: bool
    """True: the clients' node (first in their failover list) also leads the task queue."""
    target: str
    """``"clients"``: the fault hits the clients' node; ``"leader"``: the queue's leader."""
    start: FaultAction = field(repr=False)
    end: FaultAction = field(repr=False)
    operator_sees: str
    """What an operator sees meanwhile (for the README table)."""


SCENARIOS: dict[str, SilentScenario] = {
    scenario.name: scenario
    for scenario in (
        SilentScenario(
            name="freeze",
            description="SIGSTOP the node the clients use (and queue leader), then SIGCONT",
            clients_on_leader=True,
            target="clients",
            start=NamespacedRabbitMQCluster.freeze,
            end=NamespacedRabbitMQCluster.resume,
            operator_sees="workers log a missed-heartbeat reconnect to the next node; the node "
            "answers no CLI call; Raft elects a new leader on the others",
        ),
        SilentScenario(
            name="partition",
            description="cut the clients' node off every network (no reset), then heal",
            clients_on_leader=False,
            target="clients",
            start=NamespacedRabbitMQCluster.partition,
            end=NamespacedRabbitMQCluster.heal,
            operator_sees="workers reconnect elsewhere; after net_ticktime the majority reports "
            "the node down and the node pauses itself (pause_minority)",
        ),
        SilentScenario(
            name="leader-partition",
            description="cut the queue's leader off every network (clients elsewhere), then heal",
            clients_on_leader=False,
            target="leader",
            start=NamespacedRabbitMQCluster.partition,
            end=NamespacedRabbitMQCluster.heal,
            operator_sees="a new leader is elected on the majority; confirms pause until then; "
            "the old leader pauses (pause_minority) and rejoins as a follower",
        ),
        SilentScenario(
            name="clients-cut",
            description="cut the clients off the node they use (and queue leader); cluster whole",
            clients_on_leader=True,
            target="clients",
            start=NamespacedRabbitMQCluster.cut_clients,
            end=NamespacedRabbitMQCluster.restore_clients,
            operator_sees="the cluster reports nothing wrong; the node's connection count drops "
            "(its client connections time out) and the other nodes take them",
        ),
        SilentScenario(
            name="kill",
            description="SIGKILL the node the clients use (and queue leader), start it later",
            clients_on_leader=True,
            target="clients",
            start=_kill,
            end=_restart,
            operator_sees="connections reset at once; the node is reported down and rejoins "
            "when started",
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class SilentOptions:
    fault_seconds: float = 60.0
    """How long the node stays frozen / partitioned / cut off / dead."""
    rate: float = 125.0
    """Tasks per second the scheduler publishes, steadily, from before the fault to after it."""
    lead_seconds: float = 8.0
    """Load before the fault (the longest gap is measured from 5 s before it)."""
    tail_seconds: float = 15.0
    """Load after the fault ends."""
    work_seconds: float = 0.002
    report_dir: Path = DEFAULT_REPORT_DIR
    convergence_limit_seconds: float = 300.0
    """How long after the fault ends the cluster may take to converge before it counts as not
    converged (the report command: 300 s; CI: shorter, it only reports it)."""
    countdown_grace_seconds: float = 120.0
    """How long past its due time the countdown task may take before it counts as not run."""
    nudge_held_countdown: bool = True
    """A countdown task still held past its grace: send one more through the same delay
    queues and note whether that releases it (costs up to the countdown + 30 s)."""
    keep_logs: bool = False
    """Copy the workers', scheduler's and nodes' logs next to the report even when all went
    well (they are always kept when something was lost or left behind)."""
    tls: bool = True
    """As deployed: clients over AMQPS, nodes over mutual TLS; False: the plaintext baseline."""
    broker_overrides: dict[str, object] = field(default_factory=dict)
    """``BrokerSettings`` fields to run with instead of the deployed config, to compare (e.g.
    ``{"net_ticktime_seconds": 60}``). Empty: exactly what is deployed."""

    def __post_init__(self) -> None:
        if not 5 <= self.fault_seconds <= 600:
            raise ValueError(
                f"fault_seconds: {self.fault_seconds!r}; give 5..600 seconds (the report "
                "command uses 60)"
            )
        if not 10 <= self.rate <= 1000:
            raise ValueError(f"rate: {self.rate!r}; give 10..1000 tasks per second")
        if not 6 <= self.lead_seconds <= 120:
            raise ValueError(
                f"lead_seconds: {self.lead_seconds!r}; give 6..120 seconds (gaps are measured "
                "from 5 s before the fault)"
            )
        if not 5 <= self.tail_seconds <= 600:
            raise ValueError(f"tail_seconds: {self.tail_seconds!r}; give 5..600 seconds")
        if not 0 <= self.work_seconds <= 1:
            raise ValueError(f"work_seconds: {self.work_seconds!r}; give 0..1 seconds")
        if not 10 <= self.convergence_limit_seconds <= 3600:
            raise ValueError(
                f"convergence_limit_seconds: {self.convergence_limit_seconds!r}; give 10..3600 "
                "seconds"
            )
        if not 5 <= self.countdown_grace_seconds <= 3600:
            raise ValueError(
                f"countdown_grace_seconds: {self.countdown_grace_seconds!r}; give 5..3600 seconds"
            )

    @property
    def load_seconds(self) -> float:
        return self.lead_seconds + self.fault_seconds + self.tail_seconds

    @property
    def tasks(self) -> int:
        """The steady load over the whole run (at least the failover drill's minimum)."""
        return max(MIN_TASKS, round(self.rate * self.load_seconds))
