"""The failover drill's scenarios, options and constants, and the one wait helper every step uses.

Owns what a run is asked to do (which fault, how much load, for how long) and the sizes of the
load (workers, concurrency, publishers). Does not run anything (``run``) or measure (``measure``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TASK_QUEUE = "default"
MIN_TASKS = 5000
DEFAULT_REPORT_DIR = REPOSITORY / "build" / "drills"
WORKERS = 2
CONCURRENCY = 2
PUBLISHERS = 4


class DrillFailure(RuntimeError):
    """The drill could not run a step (not the same as a failed expectation in the report)."""



# ------------------------------------------------------------------------------ options


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    description: str
    load_seconds: float
    """How long the scheduler spreads the N tasks over: the load must outlast the fault."""
    fault_at_fraction: float
    """The fault starts once this fraction of the tasks has completed."""


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            name="node-kill",
            description="SIGKILL the node the workers are connected to; restart it later",
            load_seconds=24.0,
            fault_at_fraction=0.25,
        ),
        Scenario(
            name="leader-kill",
            description="SIGKILL the quorum leader of the task queue; restart it later",
            load_seconds=24.0,
            fault_at_fraction=0.25,
        ),
        Scenario(
            name="rolling-restart",
            description="restart every node like the StatefulSet: drain, stop, start, rejoin",
            load_seconds=60.0,
            fault_at_fraction=0.05,
        ),
        Scenario(
            name="worker-kill",
            description="SIGKILL one worker (main + pool processes) in the middle of a task",
            load_seconds=16.0,
            fault_at_fraction=0.3,
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class DrillOptions:
    tasks: int = MIN_TASKS
    """Short tasks per scenario (at least 5,000)."""
    work_seconds: float = 0.002
    """What each task does besides its two database writes: sleep this long."""
    report_dir: Path = DEFAULT_REPORT_DIR
    restart_after_seconds: float = 3.0
    """How long a killed node or worker stays down before it is started again."""
    tls: bool = True
    """As deployed: clients over AMQPS, nodes over mutual TLS. False: the plaintext baseline
    the README compares failover times with."""

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, int) or self.tasks < MIN_TASKS:
            raise ValueError(f"tasks: {self.tasks!r} is too few; give at least {MIN_TASKS}")
        if not 0 <= self.work_seconds <= 1:
            raise ValueError(f"work_seconds: {self.work_seconds!r}; give 0..1 seconds")
        if not 0 <= self.restart_after_seconds <= 60:
            raise ValueError(
                f"restart_after_seconds: {self.restart_after_seconds!r}; give 0..60 seconds"
            )



# ---------------------------------------------------------------------------------- run


def wait_until(
    condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DrillFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
