"""One silent-fault scenario from a fresh namespaced cluster and database: :func:`run_scenario`.

Owns the run: boot :class:`~drills.netns_cluster.NamespacedRabbitMQCluster` (each node in its own
network namespace), place the clients' node relative to the task queue's leader, start two
workers with the Deployment's command line and the app's scheduler in the clients namespace
(a steady load), send one countdown task due in the middle of the fault, cause the fault for
the window, end it, time the convergence, wait for every task, measure, chart and write JSON.
Never leaves a process, namespace or /etc/netns directory behind.

It reuses the failover drill's pieces (``drills.celery_failover``: ``DrillRun``, processes,
completions, tally, chart) rather than a second copy. Does not define the faults (``scenarios``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from drills.celery_failover.measure import (
    Row,
    completed_during,
    drill_database,
    longest_stall,
)
from drills.celery_failover.options import TASK_QUEUE, WORKERS, DrillFailure, DrillOptions, Scenario
from drills.celery_failover.processes import ProcessSet
from drills.celery_failover.report import Window, draw_completions_chart
from drills.celery_failover.run import DrillRun, finish_load, keep_logs, tally
from drills.local_services import ServiceUnavailable, over_unix_socket
from drills.netns_cluster import NamespacedRabbitMQCluster
from drills.rabbitmq_cluster import DRILL_VHOST, DrillError
from drills.silent_faults.report import SilentResult
from drills.silent_faults.scenarios import SCENARIOS, SilentOptions, SilentScenario


def run_scenario(name: str, options: SilentOptions | None = None) -> SilentResult:
    """Run one scenario from a fresh cluster and database; never leaves anything behind."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario: {name!r} is unknown; choose one of {', '.join(SCENARIOS)}")
    options = options or SilentOptions()
    scenario = SCENARIOS[name]
    options.report_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"hacelery-silent-drill-{name}-"))
    processes = ProcessSet(scratch)
    cluster = NamespacedRabbitMQCluster(size=3, broker_overrides=options.broker_overrides,
                                        tls=options.tls)
    failed = True
    try:
        with cluster, drill_database() as database_url:
            try:
                client_database_url = over_unix_socket(database_url)
            except ServiceUnavailable as error:
                raise DrillFailure(str(error)) from None
            run = DrillRun(
                Scenario(
                    name=name,
                    description=scenario.description,
                    load_seconds=options.load_seconds,
                    fault_at_fraction=options.lead_seconds / options.load_seconds,
                ),
                DrillOptions(tasks=options.tasks, work_seconds=options.work_seconds,
                             report_dir=options.report_dir),
                cluster,
                database_url,
                processes,
                scratch,
                client_database_url=client_database_url,
            )
            try:
                result, completion_times, window = _run(run, scenario, options)
            finally:
                processes.stop_all()
                run.completions.close()
                _copy_node_logs(cluster, scratch)
        failed = False
    finally:
        # Whatever happened above: no worker, scheduler, node, epmd or namespace survives.
        processes.stop_all()
        cluster.stop_all()
        leftovers = processes.leftovers() + cluster.leftover_processes()
        namespaces = cluster.leftover_namespaces()
        if failed:
            keep_logs(scratch, options.report_dir / f"silent-{name}-logs")
    chart = options.report_dir / f"silent-{name}.png"
    draw_completions_chart(
        chart,
        completion_times,
        result.events,
        title=(
            f"{name} ({options.fault_seconds:g} s): lost {result.lost}, longest gap "
            f"{result.longest_gap_seconds:.1f} s, longest publish call "
            f"{_maybe(result.longest_publish_call_seconds)}"
        ),
        windows=(window,),
    )
    result = replace(result, leftover_processes=leftovers, leftover_namespaces=namespaces,
                     chart=str(chart))
    (options.report_dir / f"silent-{name}.json").write_text(result.to_json())
    if options.keep_logs or result.misses() or result.scheduler_exit_code != 0 or leftovers or (
        namespaces
    ):
        keep_logs(scratch, options.report_dir / f"silent-{name}-logs")
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def _copy_node_logs(cluster: NamespacedRabbitMQCluster, scratch: Path) -> None:
    """The nodes' own logs (partition detection, pauses, elections) go with the run's logs."""
    for node in cluster.nodes:
        source = node.directory / "log" / "stdout.log"
        with contextlib.suppress(OSError):
            shutil.copyfile(source, scratch / f"{cluster.short_name(node.name)}.log")


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _place_clients(run: DrillRun, scenario: SilentScenario) -> tuple[str, str]:
    """Order the failover list so the clients use the node the scenario wants; returns
    ``(clients' node, queue leader)``."""
    run.declare_task_queues_via(run.cluster.nodes[0].name)
    leader = run.cluster.quorum_leader(TASK_QUEUE)
    if scenario.clients_on_leader:
        first = leader
    else:
        first = next(node for node in run.node_order if node != leader)
    start = run.node_order.index(first)
    run.node_order = run.node_order[start:] + run.node_order[:start]
    return first, leader


def _run(
    run: DrillRun, scenario: SilentScenario, options: SilentOptions
) -> tuple[SilentResult, list[float], Window]:
    cluster = run.cluster
    assert isinstance(cluster, NamespacedRabbitMQCluster)
    clients_node, leader = _place_clients(run, scenario)
    target = clients_node if scenario.target == "clients" else leader
    for index in range(WORKERS):
        run.workers.append(run.start_worker(f"worker{index + 1}"))
    connected = sorted({cluster.short_name(run.connected_node(w)) for w in run.workers})
    run.notes.append(
        f"clients' failover list starts at {cluster.short_name(clients_node)}; workers "
        f"connected to {', '.join(connected)}; queue leader {cluster.short_name(leader)}; fault on "
        f"{cluster.short_name(target)}"
    )
    scheduler = run.start_scheduler()
    # One countdown task, due in the middle of the fault window: native delayed delivery must
    # still deliver it (its delay queues are quorum queues too).
    countdown = options.lead_seconds + options.fault_seconds / 2
    countdown_key = f"{run.prefix}-countdown"
    countdown_sent = time.time()
    countdown_sender = run.processes.start(
        "countdown",
        run.scheduler_command(tasks=1, prefix=countdown_key, rate=None, countdown=countdown),
        run.environment("countdown"),
    )
    run.wait_for_completed_fraction(run.scenario.fault_at_fraction)
    fault_at = scenario.start(cluster, target)
    run.mark(f"{scenario.name} {cluster.short_name(target)}", fault=True, at=fault_at)
    time.sleep(max(0.0, fault_at + options.fault_seconds - time.time()))
    fault_end = scenario.end(cluster, target)
    run.mark(f"end of {scenario.name}", at=fault_end)
    converged_after = _await_convergence(
        run, scenario, target, fault_end, options.convergence_limit_seconds
    )
    load = finish_load(run, scheduler)
    counts = tally(run, options.tasks)
    with contextlib.suppress(Exception):
        countdown_sender.process.wait(timeout=30)
    due = countdown_sent + countdown
    countdown_row = _await_countdown(
        run, f"{countdown_key}-00000", due, options.countdown_grace_seconds
    )
    countdown_fired = countdown_row is not None
    countdown_late = (
        countdown_row.first_completed_at - due
        if countdown_row is not None and countdown_row.first_completed_at else None
    )
    countdown_held = None
    if not countdown_fired:
        countdown_held = _held_messages(run) or None
        run.notes.append(
            f"the countdown task had not run {options.countdown_grace_seconds:.0f} s after it "
            f"was due; messages still held: {countdown_held or 'none (lost)'}"
        )
        if countdown_held and options.nudge_held_countdown:
            _nudge_countdown(run, f"{countdown_key}-00000", countdown)
    stall = longest_stall(counts.completion_times, fault_at)
    resumed_after = stall.ends_at - fault_at if stall.ends_at > fault_at else None
    running_again = completed_during(
        counts.completion_times, fault_end - min(5.0, options.fault_seconds / 4), fault_end
    )
    for worker in run.workers:
        with contextlib.suppress(DrillFailure, KeyError):
            node = cluster.short_name(run.connected_node(worker))
            run.notes.append(f"{worker.name} ends connected to {node}")
    result = SilentResult(
        scenario=scenario.name,
        description=scenario.description,
        rabbitmq_version=str(cluster.version),
        fault_seconds=options.fault_seconds,
        tasks=options.tasks,
        completed=counts.completed,
        lost=counts.lost,
        duplicate_executions=counts.duplicate_executions,
        reruns=counts.reruns,
        longest_gap_seconds=stall.seconds,
        resumed_after_seconds=resumed_after,
        resumed_before_fault_ended=running_again,
        longest_publish_call_seconds=load.longest_call_seconds,
        longest_publish_seconds=load.longest_publish_seconds,
        publish_retries=load.publish_retries,
        converged_after_seconds=converged_after,
        countdown_fired=countdown_fired,
        countdown_late_seconds=countdown_late,
        countdown_held_in=countdown_held,
        scheduler_exit_code=load.exit_code,
        broker_overrides={key: str(value) for key, value in options.broker_overrides.items()},
        events=sorted(run.events, key=lambda event: event.at),
        notes=run.notes,
    )
    window = Window(start=fault_at, end=fault_end,
                    label=f"{scenario.name} ({options.fault_seconds:g} s)")
    return result, counts.completion_times, window


def _await_countdown(run: DrillRun, key: str, due: float, grace: float) -> Row | None:
    """The countdown task's row once it completed, waiting up to ``grace`` seconds past its
    due time (a delay queue led by the faulty node holds it until that node's queues elect a
    new leader); None if it never ran by then."""
    deadline = max(due + grace, time.time())
    while True:
        row = run.completions.row(key)
        if row is not None and row.executions >= 1:
            return row
        if time.time() > deadline:
            return None
        time.sleep(0.5)


def _nudge_countdown(run: DrillRun, key: str, countdown: float) -> None:
    """A countdown task held in its delay queue past its due time: does the next delayed
    message through the same queues release it? (Noted; the answer tells an operator whether
    ordinary countdown traffic unsticks it.)"""
    started = time.time()
    nudge = run.processes.start(
        "countdown-nudge",
        run.scheduler_command(tasks=1, prefix=f"{key}-nudge", rate=None, countdown=countdown),
        run.environment("countdown-nudge"),
    )
    with contextlib.suppress(subprocess.TimeoutExpired):
        nudge.process.wait(timeout=30)
    deadline = started + countdown + 30
    while time.time() < deadline:
        row = run.completions.row(key)
        if row is not None and row.executions >= 1:
            run.notes.append(
                f"the held countdown task ran {time.time() - started:.1f} s after one more "
                f"countdown task ({countdown:g} s) went through the delay queues"
            )
            return
        time.sleep(0.5)
    run.notes.append("one more countdown task through the delay queues did not release it")


def _held_messages(run: DrillRun) -> str:
    """Delay queues (``celery_delayed_*``) that still hold messages: where a late countdown
    task is waiting."""
    cluster = run.cluster
    for node in cluster.nodes:
        try:
            listing = cluster.cli("rabbitmqctl", node.name, "list_queues", "-p", DRILL_VHOST,
                                  "name", "messages", "--formatter", "json", "--timeout", "10",
                                  check=False, timeout=40)
            rows = json.loads(listing.stdout)
        except (subprocess.TimeoutExpired, ValueError):
            continue
        return ", ".join(f"{row['name']}: {row['messages']}" for row in rows
                         if row.get("messages") and row["name"].startswith("celery_delayed_"))
    return "unknown (no node answered)"


def _await_convergence(
    run: DrillRun, scenario: SilentScenario, target: str, fault_end: float, limit: float
) -> float | None:
    """Seconds from the end of the fault until the cluster is whole again (None: not within
    the limit; the problems are noted)."""
    cluster = run.cluster
    seen: set[tuple[str, ...]] = set()

    def note_progress(problems: tuple[str, ...]) -> None:
        # What an operator would see meanwhile: each new state once, with its time.
        if problems not in seen:
            seen.add(problems)
            run.notes.append(
                f"+{time.time() - fault_end:.0f} s after the fault ended: {'; '.join(problems)}"
            )

    try:
        if scenario.name == "kill":
            cluster.await_rejoined(target, timeout=limit)
        cluster.await_converged(timeout=limit, on_progress=note_progress)
    except (DrillError, DrillFailure) as error:
        run.notes.append(str(error))
        return None
    converged = time.time()
    run.mark("cluster converged", at=converged)
    return converged - fault_end
