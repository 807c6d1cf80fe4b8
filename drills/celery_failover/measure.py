"""What a drill measures: task completions in PostgreSQL, the event timeline, pauses.

Owns the scratch database of a run, :class:`Completions` (reads the ``record`` task's rows),
:class:`Event` (a fault or another moment of the run), and the pure measurements
(:func:`longest_gap`, :func:`measure_fault`). Does not cause faults or draw charts.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from drills.celery_failover.options import DrillFailure
from drills.local_services import POSTGRES_ADMIN_URL, ServiceUnavailable, scratch_database


@dataclass(frozen=True, kw_only=True)
class Event:
    at: float
    """Wall-clock time (``time.time()``), comparable with the database's timestamps."""
    label: str
    is_fault: bool


@dataclass(frozen=True, kw_only=True)
class InterruptedTask:
    """The task a killed worker was running: its own redelivery and completions."""

    starts: int
    completions: int
    """Must be exactly 1: it was interrupted, redelivered, and ran to completion once."""
    redelivered_after_seconds: float | None
    """From the kill until the task started again on another worker."""
    completed_after_seconds: float


@dataclass(frozen=True, kw_only=True)
class FaultMeasure:
    label: str
    to_first_completion: float | None
    """Seconds from the fault to the first completion of a task first started after it."""
    pause: float
    """Longest gap between completions from just before the fault to 30 s after it."""



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




@dataclass(frozen=True, kw_only=True)
class Stall:
    """The longest gap between task completions from shortly before a fault to the end."""

    seconds: float
    starts_at: float
    """The completion the gap starts after (``time.time()`` scale)."""
    ends_at: float
    """The first completion after the gap: processing resumed here."""


def longest_stall(completion_times: list[float], fault_at: float, *, before: float = 5.0) -> Stall:
    """The longest gap between consecutive completions from ``before`` seconds before the
    fault to the last completion (sorted times). Not the time to the first completion after the
    fault: prefetched messages finishing right after it would hide a stall behind them."""
    start = bisect.bisect_left(completion_times, fault_at - before)
    window = completion_times[max(0, start - 1):]
    if len(window) < 2:
        return Stall(seconds=0.0, starts_at=fault_at, ends_at=fault_at)
    gap, gap_start = longest_gap(window)
    return Stall(seconds=gap, starts_at=gap_start, ends_at=gap_start + gap)


def completed_during(completion_times: list[float], start: float, end: float) -> bool:
    """Whether any task completed in ``[start, end)`` (sorted times): e.g. processing was
    running again in the last seconds of a fault, not only after it ended."""
    index = bisect.bisect_left(completion_times, start)
    return index < len(completion_times) and completion_times[index] < end
