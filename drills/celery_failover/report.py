"""A drill's results and how they are shown: the result record, the table, the chart.

Owns :class:`ScenarioResult` (what one scenario measured, serialisable to JSON), the Markdown
table and report, and the PNG of completions per second with the faults marked. Does not
measure (``measure``) or run anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drills.celery_failover.measure import Event, FaultMeasure, InterruptedTask
from drills.celery_failover.options import CONCURRENCY, WORKERS


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
    interrupted_task: InterruptedTask | None = None
    """worker-kill only: the task the killed worker was running."""
    notes: list[str] = field(default_factory=list)
    leftover_processes: list[int] = field(default_factory=list)
    chart: str | None = None

    @property
    def worst_fault(self) -> FaultMeasure:
        return max(self.faults, key=lambda fault: (fault.to_first_completion or 0.0, fault.pause))

    def table_row(self) -> str:
        worst = self.worst_fault
        first = "n/a" if worst.to_first_completion is None else f"{worst.to_first_completion:.2f} s"
        interrupted = "n/a"
        if self.interrupted_task is not None:
            task = self.interrupted_task
            redelivered = (
                "never" if task.redelivered_after_seconds is None
                else f"{task.redelivered_after_seconds:.2f} s"
            )
            interrupted = f"redelivered after {redelivered}, completed {task.completions}x"
        return (
            f"| {self.scenario} | {self.tasks} | {self.lost} | {self.duplicate_executions} "
            f"({self.reruns} reruns) | {self.longest_pause:.2f} s | {first} | {interrupted} | "
            f"{self.publish_retries} |"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


TABLE_HEADER = (
    "| scenario | tasks | lost | duplicate executions | longest pause in completions "
    "| fault → first completion | interrupted task | publishes retried |\n"
    "|---|---|---|---|---|---|---|---|"
)




def draw_chart(result: ScenarioResult, completion_times: list[float], path: Path) -> None:
    """Completions per second over time, faults as red lines, other events as grey ones."""
    worst = result.worst_fault
    first = "n/a" if worst.to_first_completion is None else f"{worst.to_first_completion:.2f} s"
    draw_completions_chart(
        path,
        completion_times,
        result.events,
        title=(
            f"{result.scenario}: {result.tasks} tasks, lost {result.lost}, duplicates "
            f"{result.duplicate_executions}, longest pause {result.longest_pause:.2f} s, "
            f"fault → first completion {first}"
        ),
    )


@dataclass(frozen=True)
class Window:
    """A stretch of the timeline to shade (a node frozen, a partition), ``time.time()`` scale."""

    start: float
    end: float
    label: str


def draw_completions_chart(
    path: Path,
    completion_times: list[float],
    events: list[Event],
    *,
    title: str,
    windows: tuple[Window, ...] = (),
) -> None:
    """Completions per second (0.25 s bins) from the first event on; faults as red lines,
    other events as grey dashed ones, ``windows`` shaded red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = events[0].at if events else (completion_times or [0.0])[0]
    bin_seconds = 0.25
    relative = [at - origin for at in completion_times]
    end = max([*relative, *(event.at - origin for event in events), 1.0])
    if end > 86_400 or min([0.0, *(event.at - origin for event in events)]) < -86_400:
        raise ValueError(
            "draw_completions_chart: the events and completions span more than a day; every "
            "time must be time.time() (wall clock), not time.monotonic()"
        )
    bins = int(end / bin_seconds) + 2
    counts = [0] * bins
    for value in relative:
        if value >= 0:
            counts[int(value / bin_seconds)] += 1
    figure, axes = plt.subplots(figsize=(10, 4), dpi=110)
    for window in windows:
        axes.axvspan(window.start - origin, window.end - origin, color="#d62728", alpha=0.12,
                     label=window.label)
    axes.step(
        [index * bin_seconds for index in range(bins)],
        [count / bin_seconds for count in counts],
        where="post",
        color="#1f77b4",
        linewidth=1.0,
        label="completions/s (0.25 s bins)",
    )
    top = max(counts or [1]) / bin_seconds
    for event in events:
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
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("seconds since the scheduler started")
    axes.set_ylabel("completed tasks per second")
    axes.set_ylim(0, top * 1.7 + 1)
    axes.set_xlim(0, end + 0.5)
    axes.grid(alpha=0.3)
    if windows:
        axes.legend(loc="upper right", fontsize=7)
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


