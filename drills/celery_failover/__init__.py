"""Celery failover drill: ``python -m drills.celery_failover [--scenario NAME] [--tasks N]``.

Owns the measured version of "kill a broker machine and watch the workers carry on": for each
scenario, a fresh 3-node RabbitMQ cluster (``LocalRabbitMQCluster``, booted from the config the
Kubernetes component deploys), a fresh PostgreSQL database (migrated by ``app.migrate``), two
real ``celery worker`` processes started with the Deployment's own command line
(``infra.celery.worker_command``) and the app's settings (``app.settings``) with the
``;``-separated failover list, and the app's scheduler CLI (``python -m app.scheduler record``)
enqueueing N short, idempotent ``record`` tasks at a steady rate while the fault happens:

- ``node-kill``: SIGKILL the node the workers (and the scheduler) are connected to, restart it
  a few seconds later, wait until it has rejoined;
- ``leader-kill``: SIGKILL the node leading the task queue's Raft group (not the one the
  clients are connected to), restart it later;
- ``rolling-restart``: restart all three nodes one by one the way the StatefulSet does (preStop
  drain, stop, start, wait until rejoined);
- ``worker-kill``: SIGKILL one worker (main and pool processes, what a container kill does) while
  it runs a task, and start it again the way the Deployment would.

Each run reports lost tasks (keys never completed: must be 0), duplicate executions, the longest
pause in completions, and for each fault the time to the first completion of a task started
after it. It writes ``<scenario>.png`` (completions per second, faults marked), ``<scenario>.json``
and a ``report.md`` table into the report directory (default ``build/drills``), and leaves no
process behind (workers, scheduler, RabbitMQ nodes, epmd), even when it fails.

Does not own: the cluster itself (``drills.rabbitmq_cluster``), the tasks (``app.tasks``), or
the settings under test (``app.settings``, ``app.bootsteps``): it only runs them.

The package: ``options`` (scenarios, sizes), ``processes`` (what the drill starts and its
guaranteed end), ``measure`` (completions, the timeline, pauses), ``report`` (results, table,
chart), ``faults`` (one function per scenario), ``run`` (one scenario end to end), ``cli``.
"""

from drills.celery_failover.measure import (
    Completions,
    Event,
    FaultMeasure,
    Row,
    longest_gap,
    measure_fault,
)
from drills.celery_failover.options import (
    DEFAULT_REPORT_DIR,
    MIN_TASKS,
    SCENARIOS,
    DrillFailure,
    DrillOptions,
    Scenario,
)
from drills.celery_failover.report import TABLE_HEADER, ScenarioResult, report_markdown
from drills.celery_failover.run import DrillRun, run_scenario

__all__ = [
    "DEFAULT_REPORT_DIR",
    "MIN_TASKS",
    "SCENARIOS",
    "TABLE_HEADER",
    "Completions",
    "DrillFailure",
    "DrillOptions",
    "DrillRun",
    "Event",
    "FaultMeasure",
    "Row",
    "Scenario",
    "ScenarioResult",
    "longest_gap",
    "measure_fault",
    "report_markdown",
    "run_scenario",
]
