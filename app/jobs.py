"""What the workload writes to the database, and in which order, so that nothing is lost or doubled.

Owns: the life of an LCS job (validate -> row -> publish -> run -> result), the idempotent writes
that make redelivered tasks harmless, the ``record`` task's completion counters, and read models
for the web app. Every function takes an engine and plain values, so tests call them directly.

Does not own: Celery (publishing is an injected callable), HTTP, or the LCS algorithm itself.

Ordering of a submission (no orphan rows, no lost jobs):

1. the job row is committed with status ``pending``;
2. the task is published with publisher confirms;
3. success: the row becomes ``queued``. The broker did not take it (refused, nacked, no node
   reachable): the pending row is deleted and the caller gets :class:`EnqueueError` (HTTP 503),
   so nothing half-created remains. The message was written but no confirm came in time (the
   publisher raised :class:`PublishUncertain`): it may be enqueued, so the row stays
   ``pending`` and the caller gets :class:`JobNotConfirmed` (HTTP 503 naming the job).

If the process dies between 1 and 2, or the confirm never came, the row stays ``pending``;
:func:`republish_stale_jobs` (``python -m app.scheduler sweep``) publishes such rows again.
Publishing twice is harmless: the task and its result are idempotent per job id.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db import LcsJob, LcsResult, TaskCompletion, retry_while_unavailable, utcnow
from app.lcs import longest_common_substring
from app.settings import AppSettings

Publisher = Callable[[str, str], None]
"""``publish(job_id, queue)``: hand the ``lcs`` task to the broker. Raise
:class:`PublishUncertain` if the message may have reached the broker without a confirm, any
other exception if it was not taken."""

log = logging.getLogger(__name__)

PREVIEW_CHARS = 80
TERMINAL_STATUSES = ("succeeded", "failed")


class InputError(ValueError):
    """A request's input is invalid; the message names the field and what is allowed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EnqueueError(RuntimeError):
    """The broker did not accept the job; nothing was stored."""


class PublishUncertain(RuntimeError):
    """Raised by a :data:`Publisher`: the message was written but not confirmed in time, so the
    broker may or may not have it."""


class JobNotConfirmed(EnqueueError):
    """The broker did not confirm the job in time but may have it: the row stays ``pending``
    and the sweeper publishes it again (running it twice is harmless)."""

    def __init__(self, message: str, *, job_id: str, queue: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.queue = queue


class SweepStopped(RuntimeError):
    """A republish failed; the jobs republished before it are listed, the rest stay pending."""

    def __init__(self, message: str, *, republished: list[str]) -> None:
        super().__init__(message)
        self.republished = republished


@dataclass(frozen=True, kw_only=True)
class LcsInput:
    a: str
    b: str


def parse_lcs_input(payload: object, *, max_chars: int) -> LcsInput:
    """Validate an API payload: a JSON object with string fields ``a`` and ``b``."""
    if not isinstance(payload, Mapping):
        raise InputError(
            'the request body must be a JSON object like {"a": "...", "b": "..."}, '
            f"got a JSON {type(payload).__name__}"
        )
    values = {}
    for name in ("a", "b"):
        if name not in payload:
            raise InputError(f"field {name!r} is missing; send both 'a' and 'b'", field=name)
        value = payload[name]
        if not isinstance(value, str):
            raise InputError(
                f"field {name!r} must be a string, got {type(value).__name__}", field=name
            )
        if "\x00" in value:
            raise InputError(
                f"field {name!r} contains the NUL character (U+0000), which the database "
                "cannot store; remove it",
                field=name,
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                f"field {name!r} contains a lone surrogate (an unpaired \\ud800-\\udfff "
                "escape); send valid Unicode text",
                field=name,
            ) from None
        if len(value) > max_chars:
            raise InputError(
                f"field {name!r} has {len(value)} characters; the limit is {max_chars} "
                "(LCS_MAX_INPUT_CHARS)",
                field=name,
            )
        values[name] = value
    unknown = sorted(set(payload) - {"a", "b"})
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(map(repr, unknown))}; only 'a' and 'b'")
    return LcsInput(a=values["a"], b=values["b"])


def create_lcs_job(
    engine: Engine, settings: AppSettings, job_input: LcsInput, publish: Publisher
) -> tuple[str, str]:
    """Store and enqueue one job; returns ``(job_id, queue)``. See the module docstring."""
    job_id = str(uuid.uuid4())
    queue = settings.queue_for_lcs(len(job_input.a), len(job_input.b))
    with Session(engine) as session, session.begin():
        session.add(
            LcsJob(
                id=job_id,
                queue=queue,
                status="pending",
                a=job_input.a,
                b=job_input.b,
                a_length=len(job_input.a),
                b_length=len(job_input.b),
                created_at=utcnow(),
                attempts=0,
            )
        )
    try:
        publish(job_id, queue)
    except PublishUncertain as error:
        # The broker may have the message: keep the row pending for the sweeper rather than
        # leave a task that finds no job (or lose one the broker did not keep).
        raise JobNotConfirmed(
            f"the broker did not confirm the job in time: {error}", job_id=job_id, queue=queue
        ) from error
    except Exception as error:
        with Session(engine) as session, session.begin():
            # Only a still-pending row: if the broker did take the message after all and a
            # worker already ran it, the finished job stays.
            session.execute(delete(LcsJob).where(LcsJob.id == job_id, LcsJob.status == "pending"))
        raise EnqueueError(f"the broker did not accept the job: {error}") from error
    try:
        _mark_enqueued(engine, job_id)
    except DBAPIError as error:
        # The database went away after the broker took the job: the job is enqueued and will
        # run (a worker moves it on from pending itself), so the submission succeeded. The row
        # stays pending until then; a republish by the sweeper would be harmless.
        log.warning("job %s enqueued but not marked queued: %s", job_id, error)
    return job_id, queue


def _mark_enqueued(engine: Engine, job_id: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(LcsJob)
            .where(LcsJob.id == job_id, LcsJob.status == "pending")
            .values(status="queued", enqueued_at=utcnow())
        )


def republish_stale_jobs(
    engine: Engine,
    publish: Publisher,
    *,
    older_than: dt.timedelta,
    running_older_than: dt.timedelta | None = None,
) -> list[str]:
    """Publish again every job left ``pending`` for longer than ``older_than``, and (when
    given) every job still ``running`` ``running_older_than`` after it first started.

    A ``running`` job that old lost its message: its retry could not be published while the
    broker was down too, or a retry budget ran out while the database could not record the
    failure. Publishing it again is harmless (the task is idempotent per job id); the threshold
    must exceed the longest job, or a long job would be computed twice.
    """
    now = utcnow()
    stale = (LcsJob.status == "pending") & (LcsJob.created_at < now - older_than)
    if running_older_than is not None:
        stale = stale | (
            (LcsJob.status == "running") & (LcsJob.started_at < now - running_older_than)
        )
    with Session(engine) as session:
        rows = session.execute(select(LcsJob.id, LcsJob.queue).where(stale)).all()
    republished: list[str] = []
    for job_id, queue in rows:
        try:
            publish(job_id, queue)
        except Exception as error:
            raise SweepStopped(
                f"job {job_id} was not confirmed: {type(error).__name__}: {error}",
                republished=republished,
            ) from error
        _mark_enqueued(engine, job_id)
        republished.append(job_id)
    return republished


RESULT_WRITE_RETRY_SECONDS = 60.0
"""How long a worker waits for the database (to start a job, or holding its computed result)
before handing the task to Celery's retry through the broker: a restart or failover is over well
within this, and the message stays unacknowledged meanwhile (late acks), so a worker that dies
hands it back."""


def run_lcs_job(
    engine: Engine,
    job_id: str,
    *,
    worker: str | None,
    delivered_via: str | None,
    write_retry_seconds: float = RESULT_WRITE_RETRY_SECONDS,
) -> str:
    """Compute and store one job's result; safe to run any number of times per job.

    Returns what happened: ``computed``, ``already-finished`` or ``missing``. A database outage
    when the job starts or when its result is written is waited out for ``write_retry_seconds``
    each (the message stays unacknowledged meanwhile, and a computed result is kept); after
    that :class:`~app.db.DatabaseStillUnavailable` is raised and the task is retried through
    the broker.
    """
    inputs = retry_while_unavailable(
        lambda: _start_lcs_job(engine, job_id), budget=write_retry_seconds,
        what=f"starting job {job_id}",
    )
    if isinstance(inputs, str):
        return inputs
    a, b = inputs
    started = time.perf_counter()
    substring = longest_common_substring(a, b)
    seconds = time.perf_counter() - started
    retry_while_unavailable(
        lambda: _store_lcs_result(
            engine, job_id, substring, seconds, worker=worker, delivered_via=delivered_via
        ),
        budget=write_retry_seconds,
        what=f"storing the result of job {job_id}",
    )
    return "computed"


def _start_lcs_job(engine: Engine, job_id: str) -> tuple[str, str] | str:
    """Mark the job running and return its inputs, or what happened instead."""
    with Session(engine) as session, session.begin():
        job = session.get(LcsJob, job_id, with_for_update=engine.dialect.name == "postgresql")
        if job is None:
            # The publisher deleted the row after a failed confirm that had in fact reached
            # the broker: there is nothing to do and nothing to store.
            return "missing"
        if job.status in TERMINAL_STATUSES:
            # Redelivered after it finished but before the ack reached the broker.
            return "already-finished"
        job.status = "running"
        job.attempts += 1
        job.started_at = job.started_at or utcnow()
        return job.a, job.b


def _store_lcs_result(
    engine: Engine,
    job_id: str,
    substring: str,
    seconds: float,
    *,
    worker: str | None,
    delivered_via: str | None,
) -> None:
    with Session(engine) as session, session.begin():
        # Insert-if-absent keyed by job id: a second execution (redelivery after a crash
        # between this commit and the ack) cannot add a row or overwrite the first result.
        session.execute(
            _insert(engine, LcsResult)
            .values(
                job_id=job_id,
                substring=substring,
                length=len(substring),
                compute_seconds=seconds,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["job_id"])
        )
        session.execute(
            update(LcsJob)
            .where(LcsJob.id == job_id, LcsJob.status.not_in(TERMINAL_STATUSES))
            .values(
                status="succeeded",
                finished_at=utcnow(),
                worker=worker,
                delivered_via=delivered_via,
                error=None,
            )
        )


def fail_lcs_job(engine: Engine, job_id: str, error: str) -> None:
    """Mark a job failed (a permanent error: retrying would fail the same way)."""
    with Session(engine) as session, session.begin():
        session.execute(
            update(LcsJob)
            .where(LcsJob.id == job_id, LcsJob.status.not_in(TERMINAL_STATUSES))
            .values(status="failed", finished_at=utcnow(), error=error[:2000])
        )


def _insert(engine: Engine, table: Any) -> Any:
    """INSERT with ``on_conflict_*`` for the engine's dialect (PostgreSQL or SQLite)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# --- the `record` task's counters ------------------------------------------------------------


def validate_record_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > 200:
        raise InputError(
            f"record: key must be a non-empty string of at most 200 characters, got {key!r}"
        )
    return key


def record_started(engine: Engine, key: str) -> None:
    """Count one execution begun for ``key`` (creating its row on the first)."""
    now = utcnow()
    statement = _insert(engine, TaskCompletion).values(
        key=key, starts=1, executions=0, first_started_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["key"], set_={"starts": TaskCompletion.starts + 1}
    )
    with Session(engine) as session, session.begin():
        session.execute(statement)


def record_completed(engine: Engine, key: str) -> None:
    """Count one execution finished for ``key``; duplicates show as ``executions > 1``."""
    now = utcnow()
    statement = _insert(engine, TaskCompletion).values(
        key=key, starts=1, executions=1, first_completed_at=now, last_completed_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "executions": TaskCompletion.executions + 1,
            "first_completed_at": func.coalesce(TaskCompletion.first_completed_at, now),
            "last_completed_at": now,
        },
    )
    with Session(engine) as session, session.begin():
        session.execute(statement)


@dataclass(frozen=True, kw_only=True)
class CompletionSummary:
    """Counts over the ``record`` rows whose key starts with a prefix."""

    keys_completed: int
    """Distinct keys finished at least once."""
    keys_duplicated: int
    """Keys finished more than once (work done twice, e.g. after a redelivery)."""
    executions: int
    """Finished executions in total."""


def completion_summary(engine: Engine, prefix: str) -> CompletionSummary:
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with Session(engine) as session:
        completed, duplicated, executions = session.execute(
            select(
                func.count().filter(TaskCompletion.executions >= 1),
                func.count().filter(TaskCompletion.executions > 1),
                func.coalesce(func.sum(TaskCompletion.executions), 0),
            ).where(TaskCompletion.key.like(pattern, escape="\\"))
        ).one()
    return CompletionSummary(
        keys_completed=int(completed), keys_duplicated=int(duplicated), executions=int(executions)
    )


# --- read models for the web app -------------------------------------------------------------


def _seconds_between(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((_aware(end) - _aware(start)).total_seconds(), 3)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes (stored as UTC).
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat()


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def _job_view(job: Any, result: Any, *, full: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "queue": job.queue,
        "status": job.status,
        "a_length": job.a_length,
        "b_length": job.b_length,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "wait_seconds": _seconds_between(job.created_at, job.started_at),
        "run_seconds": _seconds_between(job.started_at, job.finished_at),
        "attempts": job.attempts,
        "worker": job.worker,
        "delivered_via": job.delivered_via,
        "error": job.error,
        "result": None,
    }
    if result is not None:
        view["result"] = {
            "substring": result.substring if full else _preview(result.substring),
            "length": result.length,
            "compute_seconds": round(result.compute_seconds, 6),
        }
    if full:
        view["a"], view["b"] = job.a, job.b
    else:
        view["a_preview"], view["b_preview"] = _preview(job.a_head), _preview(job.b_head)
    return view


def list_jobs(engine: Engine, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest jobs, with previews of inputs and results (not the full texts)."""
    head = PREVIEW_CHARS + 1
    columns = [
        LcsJob.id,
        LcsJob.queue,
        LcsJob.status,
        LcsJob.a_length,
        LcsJob.b_length,
        LcsJob.created_at,
        LcsJob.started_at,
        LcsJob.finished_at,
        LcsJob.attempts,
        LcsJob.worker,
        LcsJob.delivered_via,
        LcsJob.error,
        func.substr(LcsJob.a, 1, head).label("a_head"),
        func.substr(LcsJob.b, 1, head).label("b_head"),
    ]
    with Session(engine) as session:
        jobs = session.execute(
            select(*columns).order_by(LcsJob.created_at.desc()).limit(limit)
        ).all()
        # Only the head of each result: the list refreshes every second and a result can be
        # a million characters long.
        results = {
            row.job_id: row
            for row in session.execute(
                select(
                    LcsResult.job_id,
                    func.substr(LcsResult.substring, 1, head).label("substring"),
                    LcsResult.length,
                    LcsResult.compute_seconds,
                ).where(LcsResult.job_id.in_([job.id for job in jobs]))
            )
        }
        return [_job_view(job, results.get(job.id), full=False) for job in jobs]


def get_job(engine: Engine, job_id: str) -> dict[str, Any] | None:
    with Session(engine) as session:
        job = session.get(LcsJob, job_id)
        if job is None:
            return None
        return _job_view(job, session.get(LcsResult, job_id), full=True)
