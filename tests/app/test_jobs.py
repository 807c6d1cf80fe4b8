"""Job bookkeeping: validation, write order around publishing, idempotent results (SQLite)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app import jobs
from app.db import (
    DatabaseStillUnavailable,
    LcsJob,
    LcsResult,
    TaskCompletion,
    engine_for,
    retry_while_unavailable,
)
from app.migrate import upgrade
from app.settings import AppSettings


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    settings = AppSettings(
        database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}",
        lcs_large_threshold=10,
        lcs_max_input_chars=100,
    )
    upgrade(settings.sqlalchemy_url)
    return settings


@pytest.fixture
def engine(settings: AppSettings) -> Engine:
    return engine_for(settings.sqlalchemy_url)


def count_rows(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


class RecordingPublisher:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.error = error

    def __call__(self, job_id: str, queue: str) -> None:
        self.calls.append((job_id, queue))
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ("a", "must be a JSON object"),
        ({"b": "x"}, "field 'a' is missing"),
        ({"a": "x"}, "field 'b' is missing"),
        ({"a": 1, "b": "x"}, "field 'a' must be a string, got int"),
        ({"a": "x", "b": None}, "field 'b' must be a string, got NoneType"),
        ({"a": "x" * 101, "b": "x"}, "the limit is 100"),
        ({"a": "x", "b": "x", "c": "x"}, "unknown field(s) 'c'"),
        ({"a": "x\x00", "b": "x"}, "NUL character"),
        ({"a": "x", "b": "\ud800"}, "lone surrogate"),
    ],
)
def test_invalid_lcs_input_is_rejected_with_the_reason(payload: object, message: str) -> None:
    with pytest.raises(jobs.InputError) as error:
        jobs.parse_lcs_input(payload, max_chars=100)
    assert message in str(error.value)


def test_a_job_is_stored_published_and_marked_queued(settings: AppSettings, engine: Engine) -> None:
    publisher = RecordingPublisher()
    job_id, queue = jobs.create_lcs_job(
        engine, settings, jobs.LcsInput(a="abcdef", b="cdefgh"), publisher
    )
    assert (job_id, queue) == publisher.calls[0]
    assert queue == "large"  # 12 characters > threshold 10
    job = jobs.get_job(engine, job_id)
    assert job is not None and job["status"] == "queued" and job["a"] == "abcdef"


def test_a_job_the_broker_refused_leaves_no_row(settings: AppSettings, engine: Engine) -> None:
    publisher = RecordingPublisher(error=ConnectionRefusedError("broker down"))
    with pytest.raises(jobs.EnqueueError, match="broker down"):
        jobs.create_lcs_job(engine, settings, jobs.LcsInput(a="ab", b="b"), publisher)
    assert len(publisher.calls) == 1
    assert count_rows(engine, LcsJob) == 0


def test_running_a_job_twice_stores_exactly_one_result(
    settings: AppSettings, engine: Engine
) -> None:
    job_id, _ = jobs.create_lcs_job(
        engine, settings, jobs.LcsInput(a="xxabcyy", b="zabcz"), RecordingPublisher()
    )
    first = jobs.run_lcs_job(engine, job_id, worker="small@a", delivered_via="small")
    second = jobs.run_lcs_job(engine, job_id, worker="small@b", delivered_via="small")
    assert (first, second) == ("computed", "already-finished")
    assert count_rows(engine, LcsResult) == 1
    job = jobs.get_job(engine, job_id)
    assert job is not None
    assert job["status"] == "succeeded" and job["worker"] == "small@a" and job["attempts"] == 1
    assert job["result"]["substring"] == "abc" and job["result"]["length"] == 3


def test_a_redelivery_after_a_crash_mid_task_reuses_the_first_result_row(
    settings: AppSettings, engine: Engine
) -> None:
    job_id, _ = jobs.create_lcs_job(
        engine, settings, jobs.LcsInput(a="hello", b="yellow"), RecordingPublisher()
    )
    jobs.run_lcs_job(engine, job_id, worker="w1", delivered_via="small")
    # Simulate a crash after the result commit but before the ack: the job is still 'running'.
    with Session(engine) as session, session.begin():
        session.get(LcsJob, job_id).status = "running"  # type: ignore[union-attr]
    assert jobs.run_lcs_job(engine, job_id, worker="w2", delivered_via="small") == "computed"
    assert count_rows(engine, LcsResult) == 1
    job = jobs.get_job(engine, job_id)
    assert job is not None and job["attempts"] == 2 and job["result"]["substring"] == "ello"


def test_a_task_for_a_deleted_job_does_nothing(engine: Engine) -> None:
    assert (
        jobs.run_lcs_job(
            engine, "0" * 8 + "-0000-0000-0000-" + "0" * 12, worker=None, delivered_via=None
        )
        == "missing"
    )
    assert count_rows(engine, LcsResult) == 0


def test_stale_pending_jobs_are_republished_once(settings: AppSettings, engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            LcsJob(
                id="11111111-1111-1111-1111-111111111111",
                queue="small",
                status="pending",
                a="a",
                b="a",
                a_length=1,
                b_length=1,
                attempts=0,
                created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
            )
        )
    publisher = RecordingPublisher()
    republished = jobs.republish_stale_jobs(engine, publisher, older_than=dt.timedelta(minutes=1))
    assert republished == ["11111111-1111-1111-1111-111111111111"]
    assert jobs.republish_stale_jobs(engine, publisher, older_than=dt.timedelta(0)) == []
    assert len(publisher.calls) == 1


def test_record_counts_starts_and_completions_per_key(engine: Engine) -> None:
    for key in ("run-1-0", "run-1-1", "run-1-1", "run-10-0"):
        jobs.record_started(engine, key)
        jobs.record_completed(engine, key)
    jobs.record_started(engine, "run-1-2")  # started, never finished
    summary = jobs.completion_summary(engine, "run-1-")
    assert summary == jobs.CompletionSummary(keys_completed=2, keys_duplicated=1, executions=3)
    with Session(engine) as session:
        row = session.get(TaskCompletion, "run-1-1")
        assert row is not None and (row.starts, row.executions) == (2, 2)


def test_record_prefix_is_matched_literally(engine: Engine) -> None:
    jobs.record_completed(engine, "a_b-1")
    jobs.record_completed(engine, "axb-1")
    assert jobs.completion_summary(engine, "a_b").keys_completed == 1


def test_the_job_list_carries_previews_not_whole_texts(
    settings: AppSettings, engine: Engine
) -> None:
    long_text = "q" * 90
    job_id, _ = jobs.create_lcs_job(
        engine, settings, jobs.LcsInput(a=long_text, b=long_text), RecordingPublisher()
    )
    jobs.run_lcs_job(engine, job_id, worker="w", delivered_via="large")
    [listed] = jobs.list_jobs(engine)
    assert listed["result"]["length"] == 90
    assert listed["result"]["substring"] == "q" * jobs.PREVIEW_CHARS + "…"
    assert listed["a_preview"] == "q" * jobs.PREVIEW_CHARS + "…"
    assert "a" not in listed
    full = jobs.get_job(engine, job_id)
    assert full is not None and full["result"]["substring"] == long_text and full["a"] == long_text


def _job(job_id: str, status: str, started_minutes_ago: float | None) -> LcsJob:
    now = dt.datetime.now(dt.UTC)
    return LcsJob(
        id=job_id, queue="small", status=status, a="a", b="a", a_length=1, b_length=1,
        attempts=1, created_at=now - dt.timedelta(hours=2),
        started_at=None if started_minutes_ago is None
        else now - dt.timedelta(minutes=started_minutes_ago),
    )


def test_a_job_running_past_the_threshold_is_republished_and_a_recent_one_is_not(
    engine: Engine,
) -> None:
    stuck, busy = "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333"
    done = "44444444-4444-4444-4444-444444444444"
    with Session(engine) as session, session.begin():
        session.add_all([
            _job(stuck, "running", 45), _job(busy, "running", 5), _job(done, "succeeded", 90),
        ])
    publisher = RecordingPublisher()
    republished = jobs.republish_stale_jobs(
        engine, publisher, older_than=dt.timedelta(minutes=1),
        running_older_than=dt.timedelta(minutes=30),
    )
    assert republished == [stuck]
    assert publisher.calls == [(stuck, "small")]
    # Without the option only pending jobs are swept (the previous behaviour).
    assert jobs.republish_stale_jobs(engine, publisher, older_than=dt.timedelta(0)) == []


def _unavailable() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def test_waiting_for_the_database_backs_off_and_resumes_when_it_answers() -> None:
    outcomes: list[object] = [_unavailable(), _unavailable(), _unavailable(), "stored"]
    pauses: list[float] = []

    def operation() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry_while_unavailable(
        operation, budget=60, what="test", sleep=pauses.append
    ) == "stored"
    assert pauses == [0.5, 1.0, 2.0]


def test_waiting_for_the_database_gives_up_after_its_budget_naming_the_error() -> None:
    now = [0.0]

    def operation() -> None:
        raise _unavailable()

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(DatabaseStillUnavailable, match=r"sweep: .* 10 s .*connection refused"):
        retry_while_unavailable(operation, budget=10, what="sweep", sleep=sleep,
                                clock=lambda: now[0])
    assert now[0] == pytest.approx(10.0)


def test_other_database_errors_are_not_waited_for() -> None:
    def operation() -> None:
        raise IntegrityError("INSERT", {}, ValueError("duplicate key"))

    with pytest.raises(IntegrityError):
        retry_while_unavailable(operation, budget=60, what="test", sleep=lambda _s: None)
