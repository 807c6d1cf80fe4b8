"""Through the real thing: RabbitMQ (own vhost), PostgreSQL (own database), real worker processes.

No eager mode: every task here crosses the broker and runs in a ``celery worker`` subprocess.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import jobs
from app.celery_app import make_celery
from app.db import LcsResult, TaskCompletion, engine_for
from app.migrate import head_revision
from app.migrate import main as migrate_main
from app.settings import AppSettings
from app.web import create_app
from tests.app.conftest import REPOSITORY, Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def settings(service_environment: dict[str, str]) -> AppSettings:
    return AppSettings.from_environ(service_environment)


def finished_job(client, job_id: str, timeout: float = 60.0) -> dict:  # type: ignore[no-untyped-def]
    def done() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_until(done, timeout=timeout, what=f"job {job_id} to finish")  # type: ignore[return-value]


def test_api_jobs_run_on_the_queue_their_size_selects_and_store_one_result(
    settings: AppSettings, start_worker
) -> None:
    start_worker("small")
    start_worker("large")
    client = create_app(settings).test_client()
    small = client.post("/api/jobs", json={"a": "the quick brown fox", "b": "a quick brown dog"})
    large = client.post(
        "/api/jobs", json={"a": "x" * 600 + "needle" + "y" * 10, "b": "z" * 500 + "needle"}
    )
    assert (small.status_code, large.status_code) == (202, 202)
    assert small.get_json()["queue"] == "small" and large.get_json()["queue"] == "large"

    small_job = finished_job(client, small.get_json()["id"])
    large_job = finished_job(client, large.get_json()["id"])
    assert small_job["status"] == "succeeded"
    assert small_job["result"]["substring"] == " quick brown "
    assert small_job["delivered_via"] == "small" and small_job["worker"].startswith("small@")
    assert large_job["result"]["substring"] == "needle"
    assert large_job["delivered_via"] == "large" and large_job["worker"].startswith("large@")
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        rows = session.execute(
            select(func.count())
            .select_from(LcsResult)
            .where(LcsResult.job_id.in_([small_job["id"], large_job["id"]]))
        ).scalar_one()
    assert rows == 2


def test_a_pool_process_killed_mid_task_leads_to_one_rerun_and_one_completion(
    settings: AppSettings, start_worker
) -> None:
    worker: Service = start_worker("default", concurrency=1, name="killtest")
    celery = make_celery(settings)
    key = f"kill-{time.time_ns()}"
    celery.send_task("record", args=[key, 3.0], queue="default")
    engine = engine_for(settings.sqlalchemy_url)

    def row() -> TaskCompletion | None:
        with Session(engine) as session:
            found = session.get(TaskCompletion, key)
            if found is not None:
                session.expunge(found)
            return found

    wait_until(
        lambda: (found := row()) is not None and found.starts == 1,
        timeout=30,
        what="the task to start",
    )
    [pool_process] = worker.pool_children()
    os.kill(pool_process, signal.SIGKILL)

    finished = wait_until(
        lambda: (found := row()) is not None and found.executions >= 1 and found,
        timeout=60,
        what="the task to run again and finish",
    )
    time.sleep(1)  # a duplicate completion would show up now
    final = row()
    assert final is not None
    assert (final.starts, final.executions) == (2, 1), worker.log()[-3000:]
    assert finished.key == key
    assert "WorkerLostError" in worker.log() or "exited with" in worker.log()
    assert pool_process not in worker.pool_children()


def test_word_count_chord_merges_every_chunk(settings: AppSettings, start_worker) -> None:
    from app import tasks, wordcount

    start_worker("default", concurrency=2, name="wordcount")
    celery = make_celery(settings)
    texts = [f"alpha beta {index} beta" for index in range(45)]
    document_ids = wordcount.store_documents(celery.engine(), texts)
    job_id = tasks.start_word_count(celery, document_ids, chunk_size=10)

    def finished() -> object:
        job = wordcount.get_word_count_job(celery.engine(), job_id)
        return job if job is not None and job.status == "succeeded" else None

    job = wait_until(finished, timeout=60, what="the chord's merge step")
    assert job.total_words == 45 * 4  # type: ignore[attr-defined]
    assert job.top_words[:2] == [["beta", 90], ["alpha", 45]]  # type: ignore[attr-defined]


def test_scheduler_records_every_task_exactly_once(
    service_environment: dict[str, str], settings: AppSettings, start_worker
) -> None:
    start_worker("default", concurrency=2, name="records")
    prefix = f"sched-{time.time_ns()}"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.scheduler",
            "--no-progress",
            "record",
            "--n",
            "300",
            "--prefix",
            prefix,
        ],
        cwd=REPOSITORY,
        env=service_environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "sent 300 tasks in" in run.stdout and "tasks/s" in run.stdout
    engine = engine_for(settings.sqlalchemy_url)
    wait_until(
        lambda: jobs.completion_summary(engine, prefix).keys_completed == 300,
        timeout=90,
        what="300 record tasks",
    )
    summary = jobs.completion_summary(engine, prefix)
    assert (summary.keys_duplicated, summary.executions) == (0, 300)


def test_the_worker_keeps_its_heartbeat_file_fresh_and_removes_it_on_stop(
    service_environment: dict[str, str], start_worker
) -> None:
    from app.healthcheck import main as healthcheck

    heartbeat = Path(service_environment["CELERY_HEARTBEAT_FILE"])
    worker = start_worker("default", name="heartbeat")
    assert healthcheck(["worker", "--max-age", "15"], service_environment) == 0
    first = heartbeat.stat().st_mtime
    wait_until(lambda: heartbeat.stat().st_mtime > first, timeout=20, what="a second heartbeat")
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=30)
    assert not heartbeat.exists()


def test_migrations_from_several_processes_at_once_all_succeed(empty_postgres_url: str) -> None:
    environ = {"DATABASE_URL": empty_postgres_url}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda _: subprocess.run(
                    [sys.executable, "-m", "app.migrate"],
                    cwd=REPOSITORY,
                    env={**os.environ, **environ, "PYTHONPATH": str(REPOSITORY)},
                    capture_output=True,
                    text=True,
                    timeout=120,
                ),
                range(4),
            )
        )
    assert [result.returncode for result in results] == [0, 0, 0, 0], [r.stderr for r in results]
    outputs = [result.stdout for result in results]
    assert sum("schema upgraded from empty" in output for output in outputs) == 1
    assert sum("schema is current" in output for output in outputs) == 3
    assert migrate_main([], environ) == 0


def not_celery_result_table(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    # Celery's database result backend creates and owns celery_taskmeta/celery_tasksetmeta.
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or not table.name.startswith("celery_")


def test_migrated_schema_matches_the_models(postgres_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from app.db import Base

    engine = engine_for(AppSettings(database_url=postgres_url).sqlalchemy_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": not_celery_result_table}
        )
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, Base.metadata) == []
