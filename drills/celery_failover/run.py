"""One scenario of the failover drill from a fresh cluster and database: :func:`run_scenario`.

Owns :class:`DrillRun` (the pieces a fault needs: the cluster, workers started with the
Deployment's command line, the scheduler, the event timeline), the steps every Celery drill
shares (:meth:`DrillRun.start_scheduler`, :func:`finish_load`, :func:`tally`) and the run
itself: order the failover list, start the load, cause the fault, wait for every task,
measure, write the chart and the JSON. Never leaves a process behind. Does not define the
faults (``faults``). ``drills.silent_faults`` runs its own faults on the same pieces, with the
clients inside a network namespace: every command a client runs goes through
``cluster.client_command`` and the database URL clients use is given separately.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from drills.celery_failover.faults import FAULTS
from drills.celery_failover.measure import (
    Completions,
    Event,
    InterruptedTask,
    Row,
    drill_database,
    longest_gap,
    measure_fault,
)
from drills.celery_failover.options import (
    CONCURRENCY,
    PUBLISHERS,
    REPOSITORY,
    SCENARIOS,
    TASK_QUEUE,
    VENV_BIN,
    WORKERS,
    DrillFailure,
    DrillOptions,
    Scenario,
    wait_until,
)
from drills.celery_failover.processes import ManagedProcess, ProcessSet
from drills.celery_failover.report import ScenarioResult, draw_chart
from drills.rabbitmq_cluster import LocalRabbitMQCluster

_CONNECTED = re.compile(r"Connected to amqps?://[^@\s]+@([^:/\s]+):(\d+)/")


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
        *,
        client_database_url: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.cluster = cluster
        self.database_url = database_url
        """The drill's own connection to the run's database (on this machine)."""
        self.client_database_url = client_database_url or database_url
        """The same database as the clients (workers, scheduler) reach it."""
        self.processes = processes
        self.scratch = scratch
        self.prefix = f"{scenario.name}-{uuid.uuid4().hex[:8]}"
        self.completions = Completions(database_url, self.prefix)
        self.events: list[Event] = []
        self.notes: list[str] = []
        self.interrupted: InterruptedTask | None = None
        """Set by the worker-kill fault: what happened to the task the dead worker ran."""
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
            DATABASE_URL=self.client_database_url,
            CELERY_HEARTBEAT_FILE=str(self.scratch / f"{name}-heartbeat"),
            CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT="2",
            PYTHONPATH=str(REPOSITORY),
            PYTHONUNBUFFERED="1",
        )
        if self.cluster.tls:
            # amqps:// URLs, verified against the drill cluster's CA (the trust bundle's role).
            environment["CELERY_BROKER_CA_FILE"] = str(self.cluster.ca_file)
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
        return self.cluster.client_command(command)

    def start_worker(self, name: str) -> ManagedProcess:
        worker = self.processes.start(name, self.worker_command(name), self.environment(name))
        wait_until(
            lambda: " ready." in worker.log() or not worker.alive(),
            timeout=60,
            what=f"worker {name} to be ready",
        )
        if not worker.alive():
            raise DrillFailure(f"worker {name} exited:\n{worker.log()[-3000:]}")
        return worker

    def connected_node(self, worker: ManagedProcess) -> str:
        endpoints = _CONNECTED.findall(worker.log())
        if not endpoints:
            raise DrillFailure(f"no 'Connected to' line in {worker.name}'s log")
        host, port = endpoints[-1]
        return self.cluster.node_for_endpoint(host, int(port))

    def declare_task_queues_via(self, node_name: str) -> None:
        """Declare the app's queues through ``node_name`` (from where the clients run)."""
        self.run_client_python(
            "import os, sys\n"
            "from kombu import Connection\n"
            "from app.settings import AppSettings, task_queues\n"
            "ssl = AppSettings.from_environ(os.environ).broker_ssl_options() or False\n"
            "with Connection(sys.argv[1], connect_timeout=5, ssl=ssl) as connection:\n"
            "    channel = connection.channel()\n"
            "    for queue in task_queues():\n"
            "        queue.bind(channel).declare()\n"
            "    channel.close()\n",
            self.cluster.amqp_url(node_name),
        )

    def run_client_python(self, code: str, *arguments: str, timeout: float = 60.0) -> str:
        """Run a short Python program where the clients run; returns its output."""
        result = subprocess.run(
            self.cluster.client_command([sys.executable, "-c", code, *arguments]),
            cwd=REPOSITORY,
            env=self.environment("drill-client"),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise DrillFailure(f"client program failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def scheduler_command(self, *, tasks: int, prefix: str, rate: float | None,
                          countdown: float | None = None) -> list[str]:
        """The app's scheduler CLI enqueueing ``record`` tasks, where the clients run."""
        command = [
            sys.executable, "-m", "app.scheduler", "--no-progress",
            "--publishers", str(PUBLISHERS),
        ]
        if rate is not None:
            command += ["--rate", f"{rate:.3f}"]
        command += [
            "record", "--n", str(tasks), "--prefix", prefix,
            "--work-seconds", f"{self.options.work_seconds:g}", "--queue", TASK_QUEUE,
        ]
        if countdown is not None:
            command += ["--countdown", f"{countdown:g}"]
        return self.cluster.client_command(command)

    def start_scheduler(self) -> ManagedProcess:
        """The steady load: ``options.tasks`` tasks spread over the scenario's load seconds."""
        rate = self.options.tasks / self.scenario.load_seconds
        command = self.scheduler_command(tasks=self.options.tasks, prefix=self.prefix, rate=rate)
        scheduler = self.processes.start("scheduler", command, self.environment("scheduler"))
        self.mark("scheduler starts")
        return scheduler

    # --- the timeline

    def mark(self, label: str, *, fault: bool = False, at: float | None = None) -> float:
        at = time.time() if at is None else at
        with self._lock:
            self.events.append(Event(at=at, label=label, is_fault=fault))
        return at

    def wait_for_completed_fraction(self, fraction: float, timeout: float = 120.0) -> None:
        target = max(1, int(self.options.tasks * fraction))
        wait_until(
            lambda: self.completions.count() >= target,
            timeout=timeout,
            what=f"{target} completed tasks",
            interval=0.02,
        )




def run_scenario(name: str, options: DrillOptions | None = None) -> ScenarioResult:
    """Run one scenario from a fresh cluster and database; never leaves a process behind."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario: {name!r} is unknown; choose one of {', '.join(SCENARIOS)}")
    options = options or DrillOptions()
    scenario = SCENARIOS[name]
    options.report_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"hacelery-celery-drill-{name}-"))
    processes = ProcessSet(scratch)
    cluster = LocalRabbitMQCluster(size=3, tls=options.tls)
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
            keep_logs(scratch, options.report_dir / f"{name}-logs")
    chart = options.report_dir / f"{name}.png"
    draw_chart(result, completion_times, chart)
    result = replace(result, leftover_processes=leftovers, chart=str(chart))
    (options.report_dir / f"{name}.json").write_text(result.to_json())
    if result.lost or result.scheduler_exit_code != 0 or leftovers:
        keep_logs(scratch, options.report_dir / f"{name}-logs")
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def keep_logs(scratch: Path, target: Path) -> None:
    """Copy a run's logs (workers, scheduler) next to its report, for a run that failed."""
    shutil.rmtree(target, ignore_errors=True)
    with contextlib.suppress(OSError):
        shutil.copytree(scratch, target)


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
    scheduler = run.start_scheduler()
    FAULTS[scenario.name](run)
    load = finish_load(run, scheduler)
    counts = tally(run, options.tasks)
    pause, pause_at = longest_gap(counts.completion_times)
    fault_events = [event for event in run.events if event.is_fault]
    result = ScenarioResult(
        scenario=scenario.name,
        description=scenario.description,
        rabbitmq_version=str(run.cluster.version),
        tasks=options.tasks,
        completed=counts.completed,
        lost=counts.lost,
        duplicate_executions=counts.duplicate_executions,
        reruns=counts.reruns,
        longest_pause=pause,
        longest_pause_at=pause_at - run.events[0].at if run.events else 0.0,
        faults=[
            measure_fault(event, counts.rows, counts.completion_times) for event in fault_events
        ],
        events=sorted(run.events, key=lambda event: event.at),
        publish_retries=load.publish_retries,
        publish_seconds=load.publish_seconds,
        scheduler_exit_code=load.exit_code,
        load_outlasted_faults=bool(counts.completion_times)
        and counts.completion_times[-1] > max(event.at for event in fault_events),
        interrupted_task=run.interrupted,
        notes=run.notes,
    )
    return result, counts.completion_times


@dataclass(frozen=True)
class LoadOutcome:
    """How the scheduler's publishing went (from its exit code and its report lines)."""

    exit_code: int
    publish_seconds: float
    publish_retries: int
    longest_call_seconds: float | None
    """The longest single publish attempt the scheduler reported (None: not reported)."""
    longest_publish_seconds: float | None


def finish_load(run: DrillRun, scheduler: ManagedProcess) -> LoadOutcome:
    """Wait for the scheduler to finish publishing (bounded), then for every task to complete
    (bounded: redeliveries after a fault straggle in); note anything that went wrong."""
    deadline = run.scenario.load_seconds * 3 + 120
    with contextlib.suppress(subprocess.TimeoutExpired):
        scheduler.process.wait(timeout=deadline)
    exit_code = scheduler.process.poll()
    if exit_code is None:
        run.notes.append(f"the scheduler was still publishing after {deadline:.0f} s")
        scheduler.stop()
        exit_code = -1
    elif exit_code != 0:
        run.notes.append(f"scheduler exited {exit_code}: {scheduler.log()[-1500:]}")
    log = scheduler.log()
    retried = re.search(r"retried (\d+) publish", log)
    sent = re.search(r"sent \d+ tasks in ([0-9.]+) s", log)
    longest = re.search(r"longest publish call ([0-9.]+) s, longest until confirmed ([0-9.]+) s",
                        log)
    with contextlib.suppress(DrillFailure):
        wait_until(
            lambda: run.completions.count() >= run.options.tasks,
            timeout=120,
            what="every task to complete",
            interval=0.2,
        )
    time.sleep(1.0)  # a duplicate execution still in flight shows up now
    return LoadOutcome(
        exit_code=exit_code,
        publish_seconds=float(sent.group(1)) if sent else float("nan"),
        publish_retries=int(retried.group(1)) if retried else 0,
        longest_call_seconds=float(longest.group(1)) if longest else None,
        longest_publish_seconds=float(longest.group(2)) if longest else None,
    )


@dataclass(frozen=True)
class Tally:
    """The run's ``record`` tasks as the database has them."""

    rows: list[Row]
    completion_times: list[float]
    """First completion of every task, sorted (``time.time()`` scale)."""
    completed: int
    lost: int
    """Tasks the scheduler had confirmed that never completed."""
    duplicate_executions: int
    reruns: int


def tally(run: DrillRun, tasks: int) -> Tally:
    rows = run.completions.rows()
    width = max(5, len(str(tasks - 1)))
    expected = {f"{run.prefix}-{index:0{width}d}" for index in range(tasks)}
    counted = [row for row in rows if row.key in expected]
    done = {row.key for row in counted if row.executions >= 1}
    return Tally(
        rows=counted,
        completion_times=sorted(
            row.first_completed_at for row in counted if row.first_completed_at is not None
        ),
        completed=len(done),
        lost=len(expected - done),
        duplicate_executions=sum(max(0, row.executions - 1) for row in counted),
        reruns=sum(1 for row in counted if row.starts > 1),
    )


