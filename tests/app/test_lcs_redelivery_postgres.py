"""The ``lcs`` task's one-result guarantee on the real PostgreSQL, through real workers.

``app.jobs.run_lcs_job`` takes the job row ``FOR UPDATE`` and inserts the result only if absent.
SQLite ignores ``FOR UPDATE``, so only PostgreSQL proves it: a pool process SIGKILLed in the
middle of a large job (the task is redelivered: late ack + reject on worker lost), with one or two
workers racing for the redelivered message, and two executions of the same job at once (what a
redelivery looks like when the first worker lost its broker connection but kept computing).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import jobs
from app.celery_app import make_celery
from app.db import LcsJob, LcsResult, engine_for
from app.lcs import longest_common_substring
from app.settings import AppSettings
from app.web import celery_publisher
from tests.app.conftest import Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHARS = 2_000_000
"""Per input: a few seconds of suffix-array work on 2 loaded cores, so a kill lands mid-job."""


@pytest.fixture
def settings(service_environment: dict[str, str]) -> AppSettings:
    return AppSettings.from_environ(service_environment)


@pytest.fixture(scope="module")
def large_input() -> jobs.LcsInput:
    rng = random.Random(20261201)
    a = "".join(rng.choices("ACGT", k=CHARS))
    b = "".join(rng.choices("ACGT", k=CHARS - 1)) + "GATTACA" * 5
    return jobs.LcsInput(a=a + "GATTACA" * 5, b=b)


def job_state(settings: AppSettings, job_id: str) -> tuple[str, int, int]:
    """(status, attempts, result rows) without loading the inputs."""
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        status, attempts = session.execute(
            select(LcsJob.status, LcsJob.attempts).where(LcsJob.id == job_id)
        ).one()
        results = session.execute(
            select(func.count()).select_from(LcsResult).where(LcsResult.job_id == job_id)
        ).scalar_one()
    return status, attempts, results


def submit(settings: AppSettings, job_input: jobs.LcsInput) -> str:
    publish = celery_publisher(make_celery(settings))
    job_id, queue = jobs.create_lcs_job(
        engine_for(settings.sqlalchemy_url), settings, job_input, publish
    )
    assert queue == "large"
    return job_id


def worker_running(workers: list[Service], job_id: str) -> Service:
    [running] = [w for w in workers if f"Task lcs[{job_id}] received" in w.log()]
    return running


def kill_the_pool_process_mid_job(settings: AppSettings, job_id: str, worker: Service) -> None:
    """Freeze the pool process while the job is running, check it is still mid-job, kill it."""
    wait_until(
        lambda: job_state(settings, job_id)[:2] == ("running", 1),
        timeout=60,
        what="the job to start",
    )
    [pool_process] = worker.pool_children()
    os.kill(pool_process, signal.SIGSTOP)
    status, attempts, results = job_state(settings, job_id)
    assert (status, attempts, results) == ("running", 1, 0), (
        f"the job finished before the kill ({status}, {attempts}, {results}): make CHARS larger"
    )
    os.kill(pool_process, signal.SIGKILL)


def expected_substring(job_input: jobs.LcsInput) -> str:
    return longest_common_substring(job_input.a, job_input.b)


@pytest.mark.parametrize("worker_count", [1, 2], ids=["one-worker", "two-workers-racing"])
def test_a_pool_process_killed_mid_job_leaves_one_result_and_two_attempts(
    settings: AppSettings, start_worker, large_input: jobs.LcsInput, worker_count: int
) -> None:
    workers = [
        start_worker("large", concurrency=1, name=f"kill{index}") for index in range(worker_count)
    ]
    job_id = submit(settings, large_input)
    wait_until(
        lambda: any(f"Task lcs[{job_id}] received" in w.log() for w in workers),
        timeout=60,
        what="a worker to receive the job",
    )
    victim = worker_running(workers, job_id)
    kill_the_pool_process_mid_job(settings, job_id, victim)

    wait_until(
        lambda: job_state(settings, job_id)[0] in jobs.TERMINAL_STATUSES,
        timeout=150,
        what="the redelivered job to finish",
    )
    time.sleep(1)  # a second execution's writes would show up now
    assert job_state(settings, job_id) == ("succeeded", 2, 1)
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        result = session.get(LcsResult, job_id)
        assert result is not None
        assert result.substring == expected_substring(large_input)
    assert "WorkerLostError" in victim.log() or "exited with" in victim.log(), victim.log()[-2000:]


def test_two_executions_of_one_job_at_once_store_one_result(
    settings: AppSettings, start_worker, large_input: jobs.LcsInput
) -> None:
    workers = [start_worker("large", concurrency=1, name=f"race{index}") for index in range(2)]
    job_id = submit(settings, large_input)
    # The same job delivered a second time while the first execution runs.
    celery_publisher(make_celery(settings))(job_id, "large")
    wait_until(
        lambda: all(f"Task lcs[{job_id}] received" in w.log() for w in workers),
        timeout=60,
        what="both workers to receive the job",
    )
    wait_until(
        lambda: all(f"Task lcs[{job_id}] succeeded" in w.log() for w in workers),
        timeout=150,
        what="both executions to end",
    )
    assert job_state(settings, job_id) == ("succeeded", 2, 1)
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        job = session.get(LcsJob, job_id)
        result = session.get(LcsResult, job_id)
        assert job is not None and result is not None
        assert job.worker in {f"race{index}@{os.uname().nodename}" for index in range(2)}
        assert result.substring == expected_substring(large_input)
