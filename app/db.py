"""Database tables and engines of the workload (SQLAlchemy 2, psycopg 3 or SQLite).

Owns: the table definitions (the alembic migrations in ``app/migrations`` create exactly these),
one engine per process and URL with every wait on the server bounded (connect, pool, a vanished
peer), and the fork hygiene a prefork worker needs.

Does not own: creating or upgrading the schema (``app.migrate``), or what is written when
(``app.jobs``). Nothing here creates tables implicitly.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class LcsJob(Base):
    """One longest-common-substring request, from submission to result."""

    __tablename__ = "lcs_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    """pending (row written, not yet confirmed by the broker) -> queued -> running -> succeeded |
    failed. A pending row older than a minute is republished by ``app.scheduler sweep``."""
    a: Mapped[str] = mapped_column(Text)
    b: Mapped[str] = mapped_column(Text)
    a_length: Mapped[int] = mapped_column(Integer)
    b_length: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a worker started this job: > 1 shows a redelivery."""
    worker: Mapped[str | None] = mapped_column(String(255))
    """Hostname of the worker that finished it (``QUEUE@pod``)."""
    delivered_via: Mapped[str | None] = mapped_column(String(64))
    """Routing key the message was delivered with, i.e. the queue that ran it."""
    error: Mapped[str | None] = mapped_column(Text)


class LcsResult(Base):
    """The answer of one job. The primary key makes a redelivered task's write a no-op."""

    __tablename__ = "lcs_results"

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("lcs_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    substring: Mapped[str] = mapped_column(Text)
    length: Mapped[int] = mapped_column(Integer)
    compute_seconds: Mapped[float] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TaskCompletion(Base):
    """Completions of the cheap ``record`` task, keyed by the caller's id.

    ``starts`` counts executions begun and ``executions`` those finished, so a failover drill
    sees lost work (missing keys) and duplicate work (executions > 1) directly.
    """

    __tablename__ = "task_completions"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    starts: Mapped[int] = mapped_column(Integer, default=0)
    executions: Mapped[int] = mapped_column(Integer, default=0)
    first_started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    first_completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Document(Base):
    """Text for the word-count map-reduce; tasks receive document ids, never the text."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)


class WordCountJob(Base):
    """One word-count run over a set of documents, and its merged result."""

    __tablename__ = "word_count_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    document_count: Mapped[int] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    total_words: Mapped[int | None] = mapped_column(Integer)
    top_words: Mapped[Any | None] = mapped_column(JSON)
    """The 100 most frequent words as ``[[word, count], ...]``."""


log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
"""The database is down, restarting or unreachable (refused, reset, timed out, pool exhausted):
worth waiting for. Other errors (integrity, data, a missing table) would fail the same way again."""

CONNECT_TIMEOUT_SECONDS = 2
"""libpq's connect_timeout (it treats anything below 2 as 2)."""
POOL_TIMEOUT_SECONDS = 1.0
TCP_USER_TIMEOUT_MILLISECONDS = 10_000

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(sqlalchemy_url: str) -> Engine:
    """One engine (connection pool) per process and URL."""
    with _engines_lock:
        engine = _engines.get(sqlalchemy_url)
        if engine is None:
            engine = _create_engine(sqlalchemy_url)
            _engines[sqlalchemy_url] = engine
        return engine


def _create_engine(sqlalchemy_url: str) -> Engine:
    if sqlalchemy_url.startswith("sqlite"):
        # SQLite is for a quick local run: wait for the file lock instead of failing at once,
        # and let web threads share the connection pool.
        engine = create_engine(
            sqlalchemy_url, connect_args={"timeout": 30, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the web app read while a worker writes; foreign keys are off by default.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # pool_pre_ping: a connection broken by a database restart or failover is replaced instead
    # of failing the next task. Small pool: one web thread or pool process uses one connection.
    # Bounded waits, so an outage is an error within ~2 s, never a hang: the web app answers
    # 503 and a task retries with backoff (issue 14).
    return create_engine(
        sqlalchemy_url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        # Waiting for a free pooled connection: every thread holds at most one, so a full pool
        # means connections are stuck on a dead server; fail instead of queueing behind them.
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={
            # libpq's minimum: a server that does not answer the TCP handshake (a lost node,
            # a dead pod's address) costs 2 s, not the kernel's minutes of SYN retries.
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            # A connection to a server that vanished mid-query (no RST: a lost zone) is dropped
            # once sent data stays unacknowledged this long, instead of hanging in a read.
            "tcp_user_timeout": TCP_USER_TIMEOUT_MILLISECONDS,
            "keepalives": 1,
            "keepalives_idle": 20,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )


def dispose_engines_after_fork() -> None:
    """Forget connections inherited from the parent process (call in each pool child)."""
    with _engines_lock:
        for engine in _engines.values():
            # close=False: the sockets belong to the parent; only drop our references.
            engine.dispose(close=False)


def dispose_engines(*, containing: str) -> None:
    """Close and forget the engines whose URL contains ``containing`` (a database being dropped)."""
    with _engines_lock:
        for url in [url for url in _engines if containing in url]:
            _engines.pop(url).dispose()


class DatabaseStillUnavailable(RuntimeError):
    """:func:`retry_while_unavailable` spent its budget; the message names the last error."""


def retry_while_unavailable(
    operation: Callable[[], T],
    *,
    budget: float,
    what: str,
    first_pause: float = 0.5,
    longest_pause: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``operation`` (one whole transaction) until it succeeds, pausing with doubling
    backoff while the database is unavailable, for at most ``budget`` seconds.

    Used where waiting is the right answer to an outage: a worker holding a computed result,
    the sweeper, the bulk scheduler. The web app does not wait: it answers 503 at once.
    """
    deadline = clock() + budget
    pause = first_pause
    waits = 0
    while True:
        try:
            result = operation()
        except UNAVAILABLE_ERRORS as error:
            left = deadline - clock()
            if left <= 0:
                raise DatabaseStillUnavailable(
                    f"{what}: the database stayed unavailable for {budget:g} s "
                    f"({waits} wait(s)); last error: {type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}"
                ) from error
            waits += 1
            if waits == 1:
                log.warning("%s: database unavailable, waiting up to %g s: %s", what, budget,
                            str(error).splitlines()[0] if str(error) else type(error).__name__)
            sleep(min(pause, left))
            pause = min(longest_pause, pause * 2)
            continue
        if waits:
            log.warning("%s: database back after %d wait(s)", what, waits)
        return result
