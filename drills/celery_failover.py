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
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psycopg

from drills.local_services import POSTGRES_ADMIN_URL, ServiceUnavailable, scratch_database
from drills.rabbitmq_cluster import LocalRabbitMQCluster, node_short_name

REPOSITORY = Path(__file__).resolve().parents[1]
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

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, int) or self.tasks < MIN_TASKS:
            raise ValueError(f"tasks: {self.tasks!r} is too few; give at least {MIN_TASKS}")
        if not 0 <= self.work_seconds <= 1:
            raise ValueError(f"work_seconds: {self.work_seconds!r}; give 0..1 seconds")
        if not 0 <= self.restart_after_seconds <= 60:
            raise ValueError(
                f"restart_after_seconds: {self.restart_after_seconds!r}; give 0..60 seconds"
            )


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True, kw_only=True)
class Event:
    at: float
    """Wall-clock time (``time.time()``), comparable with the database's timestamps."""
    label: str
    is_fault: bool


@dataclass(frozen=True, kw_only=True)
class FaultMeasure:
    label: str
    to_first_completion: float | None
    """Seconds from the fault to the first completion of a task first started after it."""
    pause: float
    """Longest gap between completions from just before the fault to 30 s after it."""


@dataclass(frozen=True, kw_only=True)
class ScenarioResult:
    scenario: str
    description: str
    rabbitmq_version: str
    tasks: int
    completed: int
    lost: int
    duplicate_executions: int
    """Executions beyond the first, summed over keys (work done twice)."""
    reruns: int
    """Keys started more than once (a redelivery; finishing twice shows in duplicates)."""
    longest_pause: float
    longest_pause_at: float
    """Seconds after the first completion at which the longest pause began."""
    faults: list[FaultMeasure]
    events: list[Event]
    publish_retries: int
    publish_seconds: float
    scheduler_exit_code: int
    load_outlasted_faults: bool
    """False if the last fault event came after the last completion (then it was not measured)."""
    notes: list[str] = field(default_factory=list)
    leftover_processes: list[int] = field(default_factory=list)
    chart: str | None = None

    @property
    def worst_fault(self) -> FaultMeasure:
        return max(self.faults, key=lambda fault: (fault.to_first_completion or 0.0, fault.pause))

    def table_row(self) -> str:
        worst = self.worst_fault
        first = "n/a" if worst.to_first_completion is None else f"{worst.to_first_completion:.2f} s"
        return (
            f"| {self.scenario} | {self.tasks} | {self.lost} | {self.duplicate_executions} "
            f"({self.reruns} reruns) | {self.longest_pause:.2f} s | {first} | "
            f"{self.publish_retries} |"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


TABLE_HEADER = (
    "| scenario | tasks | lost | duplicate executions | longest pause in completions "
    "| fault → first completion | publishes retried |\n"
    "|---|---|---|---|---|---|---|"
)


# ---------------------------------------------------------------------------- processes


@dataclass
class ManagedProcess:
    """A process we started in its own session (so its whole group can be killed)."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)

    def stop(self, grace: float = 8.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        self.kill_group()

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A group whose members are all zombies of ours is gone for practical purposes.
        return any(_pgid(pid) == self.process.pid for pid in _live_pids())


def _live_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if state != "Z":
                yield int(entry.name)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


class ProcessSet:
    """Every process the drill starts; ``stop_all`` ends them all (groups), even on failure."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def start(self, name: str, command: list[str], environment: dict[str, str]) -> ManagedProcess:
        log_path = self.log_dir / f"{name}-{len(self.processes)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        managed = ManagedProcess(name=name, process=process, log_path=log_path)
        self.processes.append(managed)
        return managed

    def stop_all(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()

    def leftovers(self) -> list[int]:
        return [managed.process.pid for managed in self.processes if managed.group_alive()]


# ----------------------------------------------------------------------------- database


@contextlib.contextmanager
def drill_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database for one run; dropped afterwards."""
    try:
        with scratch_database("drill_celery", admin_url=POSTGRES_ADMIN_URL) as url:
            yield url
    except ServiceUnavailable as error:
        raise DrillFailure(str(error)) from None


@dataclass(frozen=True)
class Row:
    key: str
    starts: int
    executions: int
    first_started_at: float | None
    first_completed_at: float | None


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class Completions:
    """Reads the ``record`` task's rows for one run's key prefix."""

    def __init__(self, database_url: str, prefix: str) -> None:
        self.database_url = database_url
        self.prefix = prefix
        self._connection: psycopg.Connection | None = None

    def _cursor(self) -> psycopg.Cursor:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.database_url, autocommit=True)
        return self._connection.cursor()

    def count(self) -> int:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM task_completions WHERE key LIKE %s AND executions >= 1",
                (f"{self.prefix}-%",),
            )
            return int(cursor.fetchone()[0])

    _COLUMNS = "SELECT key, starts, executions, first_started_at, first_completed_at "

    def row(self, key: str) -> Row | None:
        rows = self._fetch(self._COLUMNS + "FROM task_completions WHERE key = %s", key)
        return rows[0] if rows else None

    def rows(self) -> list[Row]:
        return self._fetch(
            self._COLUMNS + "FROM task_completions WHERE key LIKE %s", f"{self.prefix}-%"
        )

    def _fetch(self, query: str, value: str) -> list[Row]:
        with self._cursor() as cursor:
            cursor.execute(query, (value,))
            return [
                Row(key, starts, executions, _epoch(started), _epoch(completed))
                for key, starts, executions, started, completed in cursor.fetchall()
            ]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


# ---------------------------------------------------------------------------------- run


def _wait_until(
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


_CONNECTED = re.compile(r"Connected to amqp://[^@\s]+@127\.0\.0\.1:(\d+)/")


class DrillRun:
    """One scenario on one fresh cluster: the pieces a fault needs, and the event timeline."""

    def __init__(
        self,
        scenario: Scenario,
        options: DrillOptions,
        cluster: LocalRabbitMQCluster,
        database_url: str,
        processes: ProcessSet,
        scratch: Path,
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.cluster = cluster
        self.database_url = database_url
        self.processes = processes
        self.scratch = scratch
        self.prefix = f"{scenario.name}-{uuid.uuid4().hex[:8]}"
        self.completions = Completions(database_url, self.prefix)
        self.events: list[Event] = []
        self.notes: list[str] = []
        self.workers: list[ManagedProcess] = []
        self.node_order = [node.name for node in cluster.nodes]
        """Order of the failover list: clients connect to the first node."""
        self._lock = threading.Lock()

    # --- environment and processes

    def environment(self, name: str) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CELERY_", "DATABASE_", "LCS_", "RABBITMQ_", "ERL_"))
        }
        environment.update(
            # The same `;`-separated failover list the Kubernetes Secret holds, same order.
            CELERY_BROKER_URL=";".join(self.cluster.amqp_url(node) for node in self.node_order),
            DATABASE_URL=self.database_url,
            CELERY_HEARTBEAT_FILE=str(self.scratch / f"{name}-heartbeat"),
            CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT="2",
            PYTHONPATH=str(REPOSITORY),
            PYTHONUNBUFFERED="1",
        )
        return environment

    def worker_command(self, name: str) -> list[str]:
        """The Deployment's command line (``infra.celery``), run from this venv."""
        from infra.celery import AppRuntimeArgs, SecretKeyRef, WorkerPoolArgs, worker_command

        runtime = AppRuntimeArgs(
            namespace="drill",
            image="drill.invalid/ha-celery:local",
            broker_url=SecretKeyRef(name="rabbitmq-broker", key="url"),
        )
        command = worker_command(
            WorkerPoolArgs(runtime=runtime, queue=TASK_QUEUE, concurrency=CONCURRENCY)
        )
        command[0] = str(VENV_BIN / "celery")
        # Two workers on one machine: the pod name (%h) would be the same for both.
        command[command.index("--hostname") + 1] = f"{TASK_QUEUE}@{name}"
        return command

    def start_worker(self, name: str) -> ManagedProcess:
        worker = self.processes.start(name, self.worker_command(name), self.environment(name))
        _wait_until(
            lambda: " ready." in worker.log() or not worker.alive(),
            timeout=60,
            what=f"worker {name} to be ready",
        )
        if not worker.alive():
            raise DrillFailure(f"worker {name} exited:\n{worker.log()[-3000:]}")
        return worker

    def connected_node(self, worker: ManagedProcess) -> str:
        ports = _CONNECTED.findall(worker.log())
        if not ports:
            raise DrillFailure(f"no 'Connected to' line in {worker.name}'s log")
        return self.cluster.node_for_port(int(ports[-1]))

    def declare_task_queues_via(self, node_name: str) -> None:
        """Declare the app's queues through ``node_name``, so its Raft leader starts there."""
        from kombu import Connection

        from app.settings import task_queues

        with Connection(self.cluster.amqp_url(node_name), connect_timeout=5) as connection:
            channel = connection.channel()
            for queue in task_queues():
                queue.bind(channel).declare()
            channel.close()

    # --- the timeline

    def mark(self, label: str, *, fault: bool = False, at: float | None = None) -> float:
        at = time.time() if at is None else at
        with self._lock:
            self.events.append(Event(at=at, label=label, is_fault=fault))
        return at

    def wait_for_completed_fraction(self, fraction: float, timeout: float = 120.0) -> None:
        target = max(1, int(self.options.tasks * fraction))
        _wait_until(
            lambda: self.completions.count() >= target,
            timeout=timeout,
            what=f"{target} completed tasks",
            interval=0.02,
        )


# ------------------------------------------------------------------------------- faults


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
    remaining = list(order)
    run.mark(f"drain {node_short_name(remaining[0])}", fault=True)

    def on_node_restarted(name: str) -> None:
        run.mark(f"{node_short_name(name)} rejoined")
        remaining.remove(name)
        if remaining:
            run.mark(f"drain {node_short_name(remaining[0])}", fault=True)

    durations = run.cluster.rolling_restart(on_node_restarted=on_node_restarted)
    run.notes.append(
        "per node stop -> rejoined: " + ", ".join(f"{seconds:.1f} s" for seconds in durations)
    )


def fault_worker_kill(run: DrillRun) -> None:
    from celery import Celery

    from app.settings import AppSettings, celery_settings_for

    run.wait_for_completed_fraction(run.scenario.fault_at_fraction)
    # A task long enough to be certainly in the middle of it when the worker dies; the
    # drill sends it itself to know its id and find the worker that runs it.
    settings = AppSettings.from_environ(run.environment("drill-client"))
    client = Celery("drill-client", set_as_current=False)
    client.config_from_object(celery_settings_for(settings))
    key = f"{run.prefix}-interrupted"
    task_id = str(uuid.uuid4())
    client.send_task("record", args=(key, 3.0), queue=TASK_QUEUE, task_id=task_id)

    def runner() -> ManagedProcess | None:
        row = run.completions.row(key)
        if row is None or row.starts < 1:
            return None
        for worker in run.workers:
            if f"record[{task_id}] received" in worker.log():
                return worker
        return None

    victim = _wait_until(runner, timeout=60, what="the long task to start")
    assert isinstance(victim, ManagedProcess)
    at = time.time()
    victim.kill_group()
    run.mark(f"SIGKILL {victim.name.split('@')[-1]}", fault=True, at=at)
    run.workers.remove(victim)
    time.sleep(run.options.restart_after_seconds)
    run.mark(f"start {victim.name}")
    run.workers.append(run.start_worker(victim.name))
    run.mark(f"{victim.name} ready")
    row = _wait_until(
        lambda: (found := run.completions.row(key)) is not None and found.executions >= 1 and found,
        timeout=60,
        what="the interrupted task to run again",
    )
    assert isinstance(row, Row)
    run.notes.append(
        f"interrupted task: started {row.starts}x, finished {row.executions}x, done "
        f"{(row.first_completed_at or at) - at:.2f} s after the kill"
    )
    if row.executions < 1:
        run.notes.append("the interrupted task never completed")
    client.close()


FAULTS: dict[str, Callable[[DrillRun], None]] = {
    "node-kill": fault_node_kill,
    "leader-kill": fault_leader_kill,
    "rolling-restart": fault_rolling_restart,
    "worker-kill": fault_worker_kill,
}


# ------------------------------------------------------------------------------ metrics


def longest_gap(times: list[float]) -> tuple[float, float]:
    """(gap, start of gap) of the longest interval between consecutive sorted times."""
    best, best_at = 0.0, times[0] if times else 0.0
    for earlier, later in itertools.pairwise(times):
        if later - earlier > best:
            best, best_at = later - earlier, earlier
    return best, best_at


def measure_fault(event: Event, rows: list[Row], completion_times: list[float]) -> FaultMeasure:
    after = [
        row.first_completed_at
        for row in rows
        if row.first_completed_at is not None
        and row.first_started_at is not None
        and row.first_started_at >= event.at
    ]
    first = min(after) - event.at if after else None
    # Gaps that overlap [fault, fault + 30 s], starting from the last completion before it.
    start = bisect.bisect_left(completion_times, event.at)
    window = completion_times[
        max(0, start - 1) : bisect.bisect_right(completion_times, event.at + 30.0) + 1
    ]
    pause, _ = longest_gap(window)
    return FaultMeasure(label=event.label, to_first_completion=first, pause=pause)


# ------------------------------------------------------------------------------ the run


def run_scenario(name: str, options: DrillOptions | None = None) -> ScenarioResult:
    """Run one scenario from a fresh cluster and database; never leaves a process behind."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario: {name!r} is unknown; choose one of {', '.join(SCENARIOS)}")
    options = options or DrillOptions()
    scenario = SCENARIOS[name]
    options.report_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"hacelery-celery-drill-{name}-"))
    processes = ProcessSet(scratch)
    cluster = LocalRabbitMQCluster(size=3)
    failed = True
    try:
        with cluster, drill_database() as database_url:
            run = DrillRun(scenario, options, cluster, database_url, processes, scratch)
            try:
                result, completion_times = _run(run)
            finally:
                processes.stop_all()
                run.completions.close()
        failed = False
    finally:
        # Whatever happened above: no worker, scheduler, node or epmd survives the drill.
        processes.stop_all()
        cluster.stop_all()
        leftovers = processes.leftovers() + cluster.leftover_processes()
        if failed:
            _keep_logs(scratch, options.report_dir / f"{name}-logs")
    chart = options.report_dir / f"{name}.png"
    draw_chart(result, completion_times, chart)
    result = replace(result, leftover_processes=leftovers, chart=str(chart))
    (options.report_dir / f"{name}.json").write_text(result.to_json())
    if result.lost or result.scheduler_exit_code != 0 or leftovers:
        _keep_logs(scratch, options.report_dir / f"{name}-logs")
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def _keep_logs(scratch: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    with contextlib.suppress(OSError):
        shutil.copytree(scratch, target)


def _scheduler_command(run: DrillRun) -> list[str]:
    scenario, options = run.scenario, run.options
    rate = options.tasks / scenario.load_seconds
    return [
        sys.executable,
        "-m",
        "app.scheduler",
        "--no-progress",
        "--publishers",
        str(PUBLISHERS),
        "--rate",
        f"{rate:.3f}",
        "record",
        "--n",
        str(options.tasks),
        "--prefix",
        run.prefix,
        "--work-seconds",
        f"{options.work_seconds:g}",
        "--queue",
        TASK_QUEUE,
    ]


def _run(run: DrillRun) -> tuple[ScenarioResult, list[float]]:
    scenario, options = run.scenario, run.options
    # The task queues exist before any client connects (a worker would declare them too), so
    # the failover list can be ordered around their Raft leader (placed by the broker).
    run.declare_task_queues_via(run.cluster.nodes[0].name)
    leader = run.cluster.quorum_leader(TASK_QUEUE)
    if scenario.name == "node-kill":
        # Worst case: the node every client uses also leads the queue; both die at once.
        first = leader
    elif scenario.name == "leader-kill":
        # The leader dies, the clients' connections (to another node) do not.
        first = next(node for node in run.node_order if node != leader)
    else:
        first = run.node_order[0]
    start = run.node_order.index(first)
    run.node_order = run.node_order[start:] + run.node_order[:start]
    for index in range(WORKERS):
        run.workers.append(run.start_worker(f"worker{index + 1}"))
    scheduler = run.processes.start(
        "scheduler", _scheduler_command(run), run.environment("scheduler")
    )
    run.mark("scheduler starts")
    FAULTS[scenario.name](run)
    scheduler_deadline = scenario.load_seconds * 3 + 120
    with contextlib.suppress(subprocess.TimeoutExpired):
        scheduler.process.wait(timeout=scheduler_deadline)
    exit_code = scheduler.process.poll()
    if exit_code is None:
        run.notes.append(f"the scheduler was still publishing after {scheduler_deadline:.0f} s")
        scheduler.stop()
        exit_code = -1
    elif exit_code != 0:
        run.notes.append(f"scheduler exited {exit_code}: {scheduler.log()[-1500:]}")
    scheduler_log = scheduler.log()
    retried = re.search(r"retried (\d+) publish", scheduler_log)
    sent = re.search(r"sent \d+ tasks in ([0-9.]+) s", scheduler_log)
    # Every task must complete: wait for the stragglers (redeliveries after the fault).
    with contextlib.suppress(DrillFailure):
        _wait_until(
            lambda: run.completions.count() >= options.tasks,
            timeout=120,
            what="every task to complete",
            interval=0.2,
        )
    time.sleep(1.0)  # a duplicate execution still in flight shows up now
    rows = run.completions.rows()
    width = max(5, len(str(options.tasks - 1)))
    expected = {f"{run.prefix}-{index:0{width}d}" for index in range(options.tasks)}
    counted = [row for row in rows if row.key in expected]
    done = {row.key for row in counted if row.executions >= 1}
    completion_times = sorted(
        row.first_completed_at for row in counted if row.first_completed_at is not None
    )
    pause, pause_at = longest_gap(completion_times)
    fault_events = [event for event in run.events if event.is_fault]
    result = ScenarioResult(
        scenario=scenario.name,
        description=scenario.description,
        rabbitmq_version=str(run.cluster.version),
        tasks=options.tasks,
        completed=len(done),
        lost=len(expected - done),
        duplicate_executions=sum(max(0, row.executions - 1) for row in counted),
        reruns=sum(1 for row in counted if row.starts > 1),
        longest_pause=pause,
        longest_pause_at=pause_at - run.events[0].at if run.events else 0.0,
        faults=[measure_fault(event, counted, completion_times) for event in fault_events],
        events=sorted(run.events, key=lambda event: event.at),
        publish_retries=int(retried.group(1)) if retried else 0,
        publish_seconds=float(sent.group(1)) if sent else float("nan"),
        scheduler_exit_code=exit_code,
        load_outlasted_faults=bool(completion_times)
        and completion_times[-1] > max(event.at for event in fault_events),
        notes=run.notes,
    )
    return result, completion_times


# ------------------------------------------------------------------------------ outputs


def draw_chart(result: ScenarioResult, completion_times: list[float], path: Path) -> None:
    """Completions per second over time, faults as red lines, other events as grey ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = result.events[0].at if result.events else (completion_times or [0.0])[0]
    bin_seconds = 0.25
    relative = [at - origin for at in completion_times]
    end = max([*relative, *(event.at - origin for event in result.events), 1.0])
    bins = int(end / bin_seconds) + 2
    counts = [0] * bins
    for value in relative:
        if value >= 0:
            counts[int(value / bin_seconds)] += 1
    figure, axes = plt.subplots(figsize=(10, 4), dpi=110)
    axes.step(
        [index * bin_seconds for index in range(bins)],
        [count / bin_seconds for count in counts],
        where="post",
        color="#1f77b4",
        linewidth=1.0,
        label="completions/s (0.25 s bins)",
    )
    top = max(counts or [1]) / bin_seconds
    for event in result.events:
        x = event.at - origin
        if event.is_fault:
            axes.axvline(x, color="#d62728", linewidth=1.4)
        else:
            axes.axvline(x, color="#7f7f7f", linewidth=0.8, linestyle="--")
        axes.text(
            x,
            top * 1.05,
            event.label,
            rotation=90,
            fontsize=7,
            va="bottom",
            ha="right",
            color="#d62728" if event.is_fault else "#555555",
        )
    worst = result.worst_fault
    first = "n/a" if worst.to_first_completion is None else f"{worst.to_first_completion:.2f} s"
    axes.set_title(
        f"{result.scenario}: {result.tasks} tasks, lost {result.lost}, duplicates "
        f"{result.duplicate_executions}, longest pause {result.longest_pause:.2f} s, "
        f"fault → first completion {first}",
        fontsize=9,
    )
    axes.set_xlabel("seconds since the scheduler started")
    axes.set_ylabel("completed tasks per second")
    axes.set_ylim(0, top * 1.7 + 1)
    axes.set_xlim(0, end + 0.5)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def report_markdown(results: list[ScenarioResult]) -> str:
    lines = [
        f"Celery failover drill, RabbitMQ {results[0].rabbitmq_version} (3 local nodes), "
        f"{WORKERS} workers x --concurrency {CONCURRENCY}, quorum queue, confirms, late acks.",
        "",
        TABLE_HEADER,
        *(result.table_row() for result in results),
        "",
    ]
    for result in results:
        lines.append(f"### {result.scenario}: {result.description}")
        for fault in result.faults:
            first = (
                "none"
                if fault.to_first_completion is None
                else f"{fault.to_first_completion:.2f} s"
            )
            lines.append(
                f"- {fault.label}: first completion of a task started after it {first}, "
                f"longest pause around it {fault.pause:.2f} s"
            )
        lines.extend(f"- {note}" for note in result.notes)
        lines.append(
            f"- publishing took {result.publish_seconds:.1f} s, {result.publish_retries} "
            f"publish(es) retried, scheduler exit code {result.scheduler_exit_code}"
        )
        if not result.load_outlasted_faults:
            lines.append("- the load ended before the last fault: that fault was not measured")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills.celery_failover",
        description="Kill RabbitMQ nodes and Celery workers under load and measure: lost tasks, "
        "duplicates, pauses. Each scenario starts a fresh 3-node cluster (~30 s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--tasks", type=int, default=MIN_TASKS, help="tasks per scenario")
    parser.add_argument(
        "--work-seconds", type=float, default=0.002, help="extra work per task (sleep)"
    )
    parser.add_argument(
        "--report-dir", type=Path, default=DEFAULT_REPORT_DIR, help="where charts/reports go"
    )
    arguments = parser.parse_args(argv)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so every process and node is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        options = DrillOptions(
            tasks=arguments.tasks,
            work_seconds=arguments.work_seconds,
            report_dir=arguments.report_dir,
        )
    except ValueError as error:
        parser.error(
            str(error).replace("tasks:", "--tasks:").replace("work_seconds", "--work-seconds")
        )
    results = []
    for name in arguments.scenario or list(SCENARIOS):
        print(f"[celery drill] {name}: {SCENARIOS[name].description} ...", flush=True)
        result = run_scenario(name, options)
        results.append(result)
        print(f"[celery drill] {result.table_row()}", flush=True)
    report = report_markdown(results)
    (options.report_dir / "report.md").write_text(report)
    print(report)
    print(f"charts and reports: {options.report_dir}")
    failed = [
        result.scenario
        for result in results
        if result.lost or result.scheduler_exit_code != 0 or result.leftover_processes
    ]
    if failed:
        print(f"FAILED (lost tasks, failed publishing or leftover processes): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
