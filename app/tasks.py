"""The Celery tasks: thin, named, idempotent wrappers around plain functions.

Owns: task names (the wire contract: ``count``, ``lcs``, ``record``, ``noop``, ``noop_batch``,
``word_count_chunk``, ``word_count_merge``), their retry policies, and the word-count chord.
Every task takes ids and small values, never ORM objects or big payloads: the LCS inputs stay
in the database and only the job id travels through RabbitMQ.

Does not own: the logic (``app.jobs``, ``app.lcs``, ``app.wordcount``) or routing rules
(``app.settings``). Publishers that only know task names use ``send_task`` with these names.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Task, chord

from app import jobs, wordcount
from app.celery_app import HaCelery, celery
from app.db import UNAVAILABLE_ERRORS, DatabaseStillUnavailable
from app.settings import DEFAULT_QUEUE

log = logging.getLogger(__name__)

# Transient database trouble (a restart, a failover, a dropped connection): retry with backoff
# instead of failing the task. Countdowns use native delayed delivery (topic exchange). Other
# database errors (integrity, data) would fail the same way again, so they are not retried.
_TRANSIENT_DATABASE_ERRORS = (*UNAVAILABLE_ERRORS, DatabaseStillUnavailable)
_DATABASE_RETRY: dict[str, Any] = {
    "autoretry_for": _TRANSIENT_DATABASE_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 10,
}
MAX_COUNT_SECONDS = 3600
MAX_RECORD_WORK_SECONDS = 600.0


def _engine(task: Task):  # type: ignore[no-untyped-def]
    app = task.app
    assert isinstance(app, HaCelery), "tasks run on the app from app.celery_app.make_celery"
    return app.engine()


def count_up(seconds: int, *, sleep=time.sleep) -> int:  # type: ignore[no-untyped-def]
    """Sleep ``seconds`` one at a time, counting; returns the count reached."""
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not 0 <= seconds <= MAX_COUNT_SECONDS
    ):
        raise ValueError(
            f"count: seconds must be a whole number 0..{MAX_COUNT_SECONDS}, got {seconds!r}"
        )
    reached = 0
    while reached < seconds:
        sleep(1)
        reached += 1
    return reached


@celery.task(name="count", bind=True)
def count(self: Task, seconds: int) -> int:
    """The blog's counter task: a stand-in for work that takes ``seconds`` seconds."""
    reached = count_up(seconds)
    log.info("count %s reached %d", self.request.id, reached)
    return reached


def _validate_job_id(job_id: object) -> str:
    try:
        return str(uuid.UUID(str(job_id)))
    except ValueError:
        raise ValueError(f"lcs: job_id must be a UUID string, got {job_id!r}") from None


# An LCS job is a user's: it is retried for as long as the database stays away (every 30 s
# at most), so it finishes when the database returns instead of staying `running` after a
# retry budget ran out while nobody could record the failure.
@celery.task(name="lcs", bind=True, **{**_DATABASE_RETRY, "max_retries": None})
def lcs(self: Task, job_id: str) -> str:
    """Compute the longest common substring of a stored job; the result goes to the database."""
    job_id = _validate_job_id(job_id)
    delivery = self.request.delivery_info or {}
    try:
        return jobs.run_lcs_job(
            _engine(self),
            job_id,
            worker=self.request.hostname,
            delivered_via=delivery.get("routing_key"),
        )
    except _TRANSIENT_DATABASE_ERRORS:
        raise
    except Exception as error:
        # Deterministic failure (e.g. out of memory on an absurd input): record it, don't retry.
        jobs.fail_lcs_job(_engine(self), job_id, f"{type(error).__name__}: {error}")
        raise


@celery.task(name="record", bind=True, **_DATABASE_RETRY)
def record(self: Task, key: str, work_seconds: float = 0.0) -> None:
    """Cheap idempotent task for drills: count a start, optionally work, count a completion."""
    key = jobs.validate_record_key(key)
    if (
        not isinstance(work_seconds, int | float)
        or not 0 <= work_seconds <= MAX_RECORD_WORK_SECONDS
    ):
        raise ValueError(
            f"record: work_seconds must be 0..{MAX_RECORD_WORK_SECONDS}, got {work_seconds!r}"
        )
    engine = _engine(self)
    jobs.record_started(engine, key)
    if work_seconds:
        time.sleep(work_seconds)
    jobs.record_completed(engine, key)


@celery.task(name="noop")
def noop(*_args: Any) -> None:
    """Does nothing: measures the platform's per-task overhead."""


@celery.task(name="noop_batch")
def noop_batch(items: Sequence[Any]) -> int:
    """Does nothing for each item of a list: one message carries many small units of work."""
    if not isinstance(items, list | tuple):
        raise ValueError(f"noop_batch: items must be a list, got {type(items).__name__}")
    return len(items)


@celery.task(name="word_count_chunk", bind=True, ignore_result=False, **_DATABASE_RETRY)
def word_count_chunk(self: Task, document_ids: list[int]) -> dict[str, int]:
    """Map: word counts of one chunk of documents (the result travels to the chord's reduce)."""
    texts = wordcount.load_document_texts(_engine(self), document_ids)
    return dict(wordcount.count_words(texts))


@celery.task(name="word_count_merge", bind=True, ignore_result=False, **_DATABASE_RETRY)
def word_count_merge(self: Task, partials: list[dict[str, int]], job_id: str) -> int:
    """Reduce: merge every chunk's counts and store the job's result; returns total words."""
    counts = wordcount.merge_counts(partials)
    wordcount.store_word_count_result(_engine(self), job_id, counts)
    return sum(counts.values())


def start_word_count(app: HaCelery, document_ids: Sequence[int], *, chunk_size: int = 100) -> str:
    """Create a word-count job and launch its chord: one map task per chunk, then one reduce."""
    chunks = wordcount.chunked(list(document_ids), chunk_size)
    if not chunks:
        raise ValueError("word count: give at least one document id")
    job_id = wordcount.create_word_count_job(
        app.engine(), document_count=len(document_ids), chunk_size=chunk_size
    )
    header = [
        app.signature("word_count_chunk", args=(chunk,), queue=DEFAULT_QUEUE) for chunk in chunks
    ]
    callback = app.signature("word_count_merge", args=(job_id,), queue=DEFAULT_QUEUE)
    chord(header, app=app)(callback)
    return job_id
