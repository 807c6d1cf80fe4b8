"""The observability drill's scenario, measurements and report.

Owns ``run_drill``: on an ``ObservedPlatform``, it

1. waits until every scrape target is up and checks that no alert fires on the healthy system;
2. kills a broker node (SIGKILL) -> RabbitMQNodeDown must reach the receiver; restarts it ->
   the resolved notification must follow;
3. stops the ``small`` worker pool and pghoard and pushes a backlog into ``small`` ->
   CeleryQueueWithoutConsumers, CeleryWorkerPoolDown, CeleryQueueBacklog, BackupDaemonDown and
   BackupWalArchivingStalled must reach the receiver; restores both -> resolved for each;
4. runs every dashboard query against the same Prometheus: each must return a series.

For each alert it reports the seconds from the fault to the notification against the budget
``for:`` (scaled) + 2 scrape intervals, and from the restore to the resolved notification. The
"fault" is when the alert's condition became true: the kill, the stop, the first message with no
consumer, the message that crossed the backlog limit, or the last stored WAL plus the limit.
Writes ``report.json`` and ``report.md`` (with the command that produced them) to the report
directory. Does not start processes itself (``platform``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from drills import postgres_backup
from drills.observability.platform import DrillOptions, ObservedPlatform
from drills.observability.receiver import WebhookReceiver
from drills.observability.services import (
    ALERTMANAGER,
    POSTGRES_EXPORTER,
    PROMETHEUS,
    DrillFailure,
    wait_until,
)
from infra.observability import dashboard

COMMAND = "python -m drills.observability"


@dataclass
class AlertMeasurement:
    fault: str
    alertname: str
    labels: dict[str, str]
    for_seconds: float
    budget_seconds: float
    """``for:`` (scaled) + 2 scrape intervals: the goal for fault -> notification."""
    fault_at: float
    delivered_after: float | None = None
    restored_at: float | None = None
    resolved_after: float | None = None

    @property
    def within_budget(self) -> bool:
        return self.delivered_after is not None and self.delivered_after <= self.budget_seconds


@dataclass
class DrillReport:
    versions: dict[str, str]
    options: dict[str, object]
    baseline_firing: list[str]
    measurements: list[AlertMeasurement]
    other_alerts: list[str]
    """Alerts delivered besides the expected ones (with their status), for the record."""
    dashboard_queries: int
    dashboard_empty: list[str]
    annotation_problems: list[str]
    load: dict[str, int]
    leftover_processes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def measurement(self, alertname: str) -> AlertMeasurement:
        return next(m for m in self.measurements if m.alertname == alertname)


def _version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    first = (result.stdout or result.stderr).splitlines()[0].strip()
    found = re.search(r"version (\S+)", first)
    return found.group(1) if found else first


def _budget(platform: ObservedPlatform, alertname: str) -> tuple[float, float]:
    rule = platform.rules[alertname]
    for_seconds = max(1, round(rule.for_seconds * platform.options.for_scale))
    return float(for_seconds), float(for_seconds + 2 * platform.options.scrape_interval_seconds)


def _measure(platform: ObservedPlatform, fault: str, alertname: str, fault_at: float,
             labels: dict[str, str] | None = None) -> AlertMeasurement:
    for_seconds, budget = _budget(platform, alertname)
    return AlertMeasurement(fault=fault, alertname=alertname, labels=labels or {},
                            for_seconds=for_seconds, budget_seconds=budget, fault_at=fault_at)


def _await_delivery(receiver: WebhookReceiver, measurement: AlertMeasurement, status: str,
                    after: float, timeout: float) -> float | None:
    found = receiver.wait_for(measurement.alertname, status, after=after, timeout=timeout,
                              labels=measurement.labels)
    return None if found is None else found.received_at


def baseline(platform: ObservedPlatform, log) -> list[str]:
    """Every target up, tasks flowing, then: which alerts fire on a healthy platform?"""
    wait_until(lambda: not platform.prometheus.unhealthy_targets() and
               platform.prometheus.targets(), timeout=90, what="every scrape target up")
    # Long enough for every scaled for: of the fast alerts to have fired, were it going to.
    wait_until(lambda: platform.prometheus.query(
        'flower_events_total{type="task-succeeded"}'), timeout=90, what="a finished task")
    settle = max(12.0, 4 * platform.options.scrape_interval_seconds)
    time.sleep(settle)
    states = {(a["labels"]["alertname"], a["state"]) for a in platform.prometheus.alerts()}
    delivered = {d.alertname for d in platform.receiver.snapshot() if d.status == "firing"}
    # Pending counts too: its condition holds on a healthy platform, so it would fire later.
    found = sorted({f"{name} ({state})" for name, state in states}
                   | {f"{name} (delivered)" for name in delivered})
    log(f"baseline after {settle:.0f} s with every target up: {found or 'no alert'}")
    return found


def broker_node_down(platform: ObservedPlatform, log) -> list[AlertMeasurement]:
    cluster = platform.cluster
    assert cluster is not None
    victim = cluster.nodes[-1].name
    cluster.kill(victim)
    killed_at = time.time()
    measurement = _measure(platform, f"SIGKILL of broker node {victim}", "RabbitMQNodeDown",
                           killed_at)
    delivered = _await_delivery(platform.receiver, measurement, "firing", killed_at,
                                measurement.budget_seconds + 60)
    measurement.delivered_after = None if delivered is None else delivered - killed_at
    log(f"node {victim} killed: RabbitMQNodeDown after {measurement.delivered_after} s "
        f"(budget {measurement.budget_seconds:.0f} s)")
    # The restore is the restart: the node's metrics answer before it has fully rejoined.
    measurement.restored_at = time.time()
    cluster.start(victim)
    rejoined = cluster.await_rejoined(victim)
    resolved = _await_delivery(platform.receiver, measurement, "resolved",
                               measurement.restored_at, 90)
    measurement.resolved_after = None if resolved is None else resolved - measurement.restored_at
    log(f"node {victim} restarted (rejoined after {rejoined:.1f} s): resolved after "
        f"{measurement.resolved_after} s")
    return [measurement]


def workers_and_backups_down(platform: ObservedPlatform, log) -> list[AlertMeasurement]:
    options = platform.options
    if not platform.prometheus.query("max(backup_last_wal_upload_timestamp_seconds)"):
        raise DrillFailure("no WAL upload was recorded before pghoard stopped")
    worker_stopped = platform.stop_worker("small")
    pghoard_stopped = platform.stop_pghoard()
    for _ in range(2 * options.small_queue_max_messages):
        platform.submit_job("small")
    # Every job for small accepted since the stop (the background load's as well) waits.
    accepted = sorted(at for at, queue in list(platform.load.accepted)
                      if queue == "small" and at >= worker_stopped)
    if len(accepted) <= options.small_queue_max_messages:
        raise DrillFailure(f"only {len(accepted)} backlog jobs accepted by the web app")
    # The last WAL upload pghoard managed: the exporter remembers it while pghoard is down.
    stored = wait_until(
        lambda: platform.prometheus.query("max(backup_last_wal_upload_timestamp_seconds)"),
        timeout=30, what="the last WAL upload time")
    wal_fault = float(stored[0]["value"][1]) + options.wal_max_age_seconds
    measurements = [
        _measure(platform, "small pool stopped, backlog published", "CeleryQueueWithoutConsumers",
                 accepted[0], {"queue": "small"}),
        _measure(platform, "small pool stopped", "CeleryWorkerPoolDown", worker_stopped,
                 {"pool": "small"}),
        _measure(platform, f"more than {options.small_queue_max_messages} messages in small",
                 "CeleryQueueBacklog", accepted[options.small_queue_max_messages],
                 {"queue": "small"}),
        _measure(platform, "pghoard stopped", "BackupDaemonDown", pghoard_stopped),
        _measure(platform, f"no WAL stored for {options.wal_max_age_seconds} s",
                 "BackupWalArchivingStalled", wal_fault, {"site": platform.pghoard.site}),
    ]
    deadline = time.monotonic() + max(m.fault_at - time.time() + m.budget_seconds
                                      for m in measurements) + 60
    for measurement in measurements:
        delivered = _await_delivery(platform.receiver, measurement, "firing",
                                    min(worker_stopped, pghoard_stopped),
                                    max(0.0, deadline - time.monotonic()))
        if delivered is not None:
            measurement.delivered_after = delivered - measurement.fault_at
        log(f"{measurement.alertname}: delivered {measurement.delivered_after} s after "
            f"{measurement.fault} (budget {measurement.budget_seconds:.0f} s)")
    restored = time.time()
    platform.start_worker("small")
    platform.start_pghoard()
    for measurement in measurements:
        measurement.restored_at = restored
        resolved = _await_delivery(platform.receiver, measurement, "resolved", restored, 120)
        measurement.resolved_after = None if resolved is None else resolved - restored
        log(f"{measurement.alertname}: resolved {measurement.resolved_after} s after the restore")
    return measurements


def dashboard_check(platform: ObservedPlatform) -> tuple[int, list[str]]:
    queries = dashboard.all_queries(dashboard.panels(platform.metrics))
    empty = [expr for expr in queries if not platform.prometheus.query(expr)]
    return len(queries), empty


def annotation_problems(receiver: WebhookReceiver) -> list[str]:
    problems = []
    for delivery in receiver.snapshot():
        name = delivery.alertname
        for key in ("summary", "description", "runbook_url"):
            text = delivery.annotations.get(key, "")
            if not text or "<no value>" in text or "error expanding" in text:
                problems.append(f"{name}.{key}: {text!r}")
        if not delivery.annotations.get("runbook_url", "").endswith(f"#{name.lower()}"):
            problems.append(f"{name}.runbook_url does not point at #{name.lower()}")
    return sorted(set(problems))


def run_drill(options: DrillOptions | None = None, log=print) -> DrillReport:
    options = options or DrillOptions()
    started = time.monotonic()
    platform = ObservedPlatform(options, log=log)
    with platform:
        firing = baseline(platform, log)
        measurements = broker_node_down(platform, log)
        measurements += workers_and_backups_down(platform, log)
        # Rates over the drill's whole run are in the 5-minute windows by now.
        queries, empty = dashboard_check(platform)
        expected = {m.alertname for m in measurements}
        other = sorted({f"{d.alertname} ({d.status})" for d in platform.receiver.snapshot()
                        if d.alertname not in expected})
        report = DrillReport(
            versions={
                "rabbitmq": platform.rabbitmq_version,
                "prometheus": _version([PROMETHEUS, "--version"]),
                "alertmanager": _version([ALERTMANAGER, "--version"]),
                "postgres_exporter": _version([POSTGRES_EXPORTER, "--version"]),
                "pghoard": postgres_backup.PGHOARD_VERSION,
            },
            options={k: str(v) for k, v in dataclasses.asdict(options).items()},
            baseline_firing=firing,
            measurements=measurements,
            other_alerts=other,
            dashboard_queries=queries,
            dashboard_empty=empty,
            annotation_problems=annotation_problems(platform.receiver),
            load={"jobs_submitted": platform.load.submitted,
                  "jobs_rejected": platform.load.rejected,
                  "jobs_failed": platform.load.failed,
                  "wal_switches": platform.load.wal_switches,
                  "notifications": platform.receiver.notifications},
        )
    report.leftover_processes = platform.leftover_processes()
    report.seconds = round(time.monotonic() - started, 1)
    write_report(report, options.report_dir)
    return report


def _seconds(value: float | None) -> str:
    return "not delivered" if value is None else f"{value:.1f}"


def markdown(report: DrillReport) -> str:
    lines = [
        f"Observability drill (`{COMMAND}`), {report.seconds:.0f} s: "
        + ", ".join(f"{k} {v}" for k, v in report.versions.items()),
        f"for: scale {report.options['for_scale']}, scrape every "
        f"{report.options['scrape_interval_seconds']} s, rules evaluated every "
        f"{report.options['evaluation_interval_seconds']} s",
        "",
        "| fault | alert | for: s | budget s | fault -> notified s | within | restore -> "
        "resolved s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in report.measurements:
        lines.append(
            f"| {m.fault} | {m.alertname} | {m.for_seconds:.0f} | {m.budget_seconds:.0f} | "
            f"{_seconds(m.delivered_after)} | {'yes' if m.within_budget else 'no'} | "
            f"{_seconds(m.resolved_after)} |"
        )
    lines += [
        "",
        f"Baseline (healthy) alerts: {', '.join(report.baseline_firing) or 'none'}. "
        f"Other notifications: {', '.join(report.other_alerts) or 'none'}.",
        f"Dashboard: {report.dashboard_queries - len(report.dashboard_empty)} of "
        f"{report.dashboard_queries} queries returned data.",
        f"Load: {report.load}. Leftover processes: {report.leftover_processes or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: DrillReport, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(report)
    for entry, measurement in zip(data["measurements"], report.measurements, strict=True):
        entry["within_budget"] = measurement.within_budget
    (directory / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    (directory / "report.md").write_text(markdown(report))

