"""The silent-fault drill's result record, its table and its report.

Owns :class:`SilentResult` (what one scenario measured, serialisable to JSON), the goals it is
compared with, and the Markdown table/report. The chart is drawn by the failover drill's
``draw_completions_chart`` (shared), with the fault window shaded. Does not measure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from drills.celery_failover.measure import Event

RESUME_GOAL_SECONDS = 15.0
"""Freeze or partition of the clients' node: processing resumes within this after the fault."""
KILL_RESUME_GOAL_SECONDS = 1.0
PUBLISH_CALL_GOAL_SECONDS = 10.0


@dataclass(frozen=True, kw_only=True)
class SilentResult:
    scenario: str
    description: str
    rabbitmq_version: str
    fault_seconds: float
    tasks: int
    completed: int
    lost: int
    """Tasks the scheduler had published and the broker had confirmed that never completed."""
    duplicate_executions: int
    reruns: int
    longest_gap_seconds: float
    """Longest gap between completions from 5 s before the fault to the end."""
    resumed_after_seconds: float | None
    """Fault start -> the first completion after that gap (None: the gap ended before it)."""
    resumed_before_fault_ended: bool
    """Tasks completed in the fault's last seconds (min(5 s, a quarter of the window)):
    processing was running again while the node was still silent."""
    longest_publish_call_seconds: float | None
    """The longest single publish attempt of the scheduler (connect, write, confirm)."""
    longest_publish_seconds: float | None
    """The longest time one task took to be confirmed, retries on other nodes included."""
    publish_retries: int
    converged_after_seconds: float | None
    """Fault end (resume / heal / restart) -> every node running, no partition, every quorum
    queue with all members online (None: not within the limit)."""
    countdown_fired: bool
    countdown_late_seconds: float | None
    """How long after its due time the countdown task completed."""
    countdown_held_in: str | None = None
    """Not run within the grace: the queues still holding messages then (empty: lost)."""
    scheduler_exit_code: int
    events: list[Event]
    broker_overrides: dict[str, str] = field(default_factory=dict)
    """Broker settings that differed from the deployed config in this run (empty: none)."""
    notes: list[str] = field(default_factory=list)
    leftover_processes: list[int] = field(default_factory=list)
    leftover_namespaces: list[str] = field(default_factory=list)
    chart: str | None = None

    @property
    def resume_goal(self) -> float:
        return KILL_RESUME_GOAL_SECONDS if self.scenario == "kill" else RESUME_GOAL_SECONDS

    def misses(self) -> list[str]:
        """The goals this run missed, in words (empty: every goal met)."""
        missed = []
        if self.lost:
            missed.append(f"{self.lost} confirmed task(s) lost")
        resumed = self.resumed_after_seconds
        if resumed is not None and resumed > self.resume_goal:
            missed.append(
                f"resumed {resumed:.1f} s after the fault (goal <= {self.resume_goal:g} s)"
            )
        call = self.longest_publish_call_seconds
        if call is not None and call > PUBLISH_CALL_GOAL_SECONDS:
            missed.append(
                f"a publish call blocked {call:.1f} s (goal <= {PUBLISH_CALL_GOAL_SECONDS:g} s)"
            )
        if self.converged_after_seconds is None:
            missed.append("the cluster did not converge after the fault ended")
        if not self.countdown_fired and self.countdown_held_in:
            missed.append(
                "the countdown task did not run within the grace after its due time (still "
                f"held, not lost: {self.countdown_held_in})"
            )
        elif not self.countdown_fired:
            missed.append("the countdown task was lost (in no queue, never run)")
        return missed

    def table_row(self) -> str:
        resumed = (
            "no stall" if self.resumed_after_seconds is None
            else f"{self.resumed_after_seconds:.2f} s"
        )
        call = _seconds(self.longest_publish_call_seconds)
        converged = _seconds(self.converged_after_seconds, missing="not converged")
        if self.countdown_fired and self.countdown_late_seconds is not None:
            countdown = f"yes (+{self.countdown_late_seconds:.1f} s)"
        elif self.countdown_held_in:
            countdown = f"**not yet**: held in {self.countdown_held_in}"
        else:
            countdown = "**no** (lost)"
        return (
            f"| {self.scenario} | {self.lost} | {self.duplicate_executions} | "
            f"{self.longest_gap_seconds:.2f} s | {resumed} | {call} | {converged} | "
            f"{countdown} |"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _seconds(value: float | None, *, missing: str = "n/a") -> str:
    return missing if value is None else f"{value:.2f} s"


TABLE_HEADER = (
    "| fault | confirmed lost | duplicates | longest gap in completions (from 5 s before) "
    "| fault → resumed | longest publish call | fault end → converged | countdown task fired |\n"
    "|---|---|---|---|---|---|---|---|"
)


def report_markdown(results: list[SilentResult], command: str) -> str:
    first = results[0]
    overrides = (
        ", ".join(f"{key}={value}" for key, value in first.broker_overrides.items())
        or "none (the deployed rabbitmq.conf)"
    )
    lines = [
        f"Silent-fault drill, RabbitMQ {first.rabbitmq_version}: 3 nodes, each in its own "
        "network namespace; 2 workers x --concurrency 2 and the scheduler in a clients "
        f"namespace; fault window {first.fault_seconds:g} s; broker overrides: {overrides}.",
        f"Produced by: `{command}`",
        "",
        TABLE_HEADER,
        *(result.table_row() for result in results),
        "",
    ]
    for result in results:
        lines.append(f"### {result.scenario}: {result.description}")
        misses = result.misses()
        lines.append(
            "- goals: " + ("all met" if not misses else "**missed**: " + "; ".join(misses))
        )
        lines.append(
            f"- {result.tasks} tasks, {result.completed} completed, {result.reruns} reruns, "
            f"{result.publish_retries} publish(es) retried, longest until confirmed "
            f"{_seconds(result.longest_publish_seconds)}, scheduler exit code "
            f"{result.scheduler_exit_code}"
        )
        lines.append(
            "- processing resumed before the fault ended: "
            + ("yes" if result.resumed_before_fault_ended else "**no**")
        )
        lines.extend(f"- {note}" for note in result.notes)
        lines.append("")
    return "\n".join(lines)
