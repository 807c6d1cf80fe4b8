"""No client waits on a broker node that went silent (the real local RabbitMQ, real processes).

A silent node is a ``FreezableProxy`` in front of the real broker, frozen: connections stay
open and this machine's kernel keeps acknowledging TCP, but nothing comes back, exactly like a
SIGSTOPped RabbitMQ node. Each test puts it first in the failover list (the worst place) and
shows that the publisher, the web app, the sweeper, the scheduler and a real worker all move on
to the next URL within their bounds, and that nothing accepted is lost. Before these bounds a
worker stopped for as long as its node was frozen and a publish blocked for as long too, so
every "within" below would have been "never" (the per-test timeout).

The same faults on a real 3-node cluster in network namespaces: ``drills.silent_faults``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kombu import Connection
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import jobs
from app.broker import (
    BrokerBounds,
    PublishRefused,
    PublishUnconfirmed,
    TaskCall,
    TaskPublisher,
)
from app.celery_app import make_celery
from app.db import LcsJob, engine_for
from app.settings import DEFAULT_QUEUE, SMALL_QUEUE, AppSettings
from app.web import RETRY_AFTER_SECONDS, celery_publisher, create_app
from drills.freezable_proxy import FreezableProxy
from drills.local_services import BROKER_PORT, private_vhost
from tests.app.conftest import VENV_BIN, Service, free_port, through, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# Short bounds keep the tests quick; the defaults are the same mechanism, only longer.
BOUNDS = BrokerBounds(
    connect_timeout=1.0, confirm_timeout=1.5, socket_timeout=1.5, heartbeat=2.0,
    publish_budget=6.0,
)
SLACK_SECONDS = 3.0
"""Scheduling noise on a shared machine; far below the freeze, which lasts the whole test."""


@pytest.fixture
def vhost_url() -> Iterator[str]:
    """A private vhost per test: its queues start empty."""
    with private_vhost("silent") as url:
        yield url


def settings_for(*urls: str, database_url: str = "sqlite:////tmp/unused.sqlite3") -> AppSettings:
    return AppSettings(broker_urls=urls, database_url=database_url, broker_bounds=BOUNDS)


def queued(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare: it must exist)."""
    with Connection(url, connect_timeout=5) as connection:
        _, count, _ = connection.default_channel.queue_declare(queue, passive=True)
    return count


# ------------------------------------------------------------------------------- publishing


def test_a_publish_on_a_frozen_node_moves_to_the_next_node_within_its_bound(
    proxy: FreezableProxy, vhost_url: str
) -> None:
    celery = make_celery(settings_for(through(proxy, vhost_url), vhost_url))
    with celery.connection_for_write() as connection:
        publisher = TaskPublisher(celery, connection=connection)
        publisher.publish(TaskCall(name="noop", queue=DEFAULT_QUEUE))
        assert connection.port == proxy.port, "the first publish went through the proxy"
        proxy.freeze()
        started = time.monotonic()
        trace = publisher.publish(TaskCall(name="noop", queue=DEFAULT_QUEUE))
        elapsed = time.monotonic() - started
        assert connection.port == BROKER_PORT, "the publish moved to the next URL"
    assert trace.attempts == 2
    assert "publish/confirm" in trace.errors[0]
    assert elapsed < BOUNDS.confirm_timeout + SLACK_SECONDS
    # The first message and the retried one; the write to the frozen node never arrived.
    assert queued(vhost_url, DEFAULT_QUEUE) == 2


def test_a_publish_with_every_node_silent_fails_retryably_within_its_budget(
    proxy: FreezableProxy, vhost_url: str
) -> None:
    celery = make_celery(settings_for(through(proxy, vhost_url)))
    with celery.connection_for_write() as connection:
        publisher = TaskPublisher(celery, connection=connection)
        publisher.publish(TaskCall(name="noop", queue=DEFAULT_QUEUE))
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(PublishUnconfirmed, match="was written but not confirmed") as error:
            publisher.publish(TaskCall(name="noop", queue=DEFAULT_QUEUE))
        elapsed = time.monotonic() - started
    assert error.value.attempts >= 1
    assert elapsed < BOUNDS.publish_budget + SLACK_SECONDS


def test_a_publish_no_node_accepts_is_refused_and_says_nothing_was_enqueued() -> None:
    celery = make_celery(settings_for(f"amqp://guest:guest@127.0.0.1:{free_port()}//"))
    with pytest.raises(PublishRefused, match="was not taken by any broker node"):
        TaskPublisher(celery, budget=1.0).publish(TaskCall(name="noop", queue=DEFAULT_QUEUE))


def test_a_failover_list_with_a_silent_first_entry_still_publishes(
    proxy: FreezableProxy, vhost_url: str
) -> None:
    proxy.freeze()  # silent from the start: it accepts TCP and never answers the handshake
    celery = make_celery(settings_for(through(proxy, vhost_url), vhost_url))
    trace = TaskPublisher(celery).publish(TaskCall(name="noop", queue=DEFAULT_QUEUE))
    assert trace.seconds < BOUNDS.connect_timeout + SLACK_SECONDS
    assert queued(vhost_url, DEFAULT_QUEUE) == 1


def test_the_scheduler_fails_over_and_reports_its_longest_publish_call(
    proxy: FreezableProxy, vhost_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.scheduler import main

    proxy.freeze()
    environ = {
        "CELERY_BROKER_URL": f"{through(proxy, vhost_url)};{vhost_url}",
        "CELERY_BROKER_CONNECT_TIMEOUT": "1",
        "CELERY_BROKER_CONFIRM_TIMEOUT": "1.5",
    }
    argv = ["--no-progress", "--publishers", "2", "--retry-seconds", "20", "noop", "--n", "40"]
    assert main(argv, environ) == 0
    output = capsys.readouterr().out
    assert "sent 40 tasks" in output
    assert "longest publish call" in output
    assert queued(vhost_url, DEFAULT_QUEUE) == 40


# ---------------------------------------------------------------------- web app and sweeper


def rows(settings: AppSettings, job_id: str | None = None) -> list[LcsJob]:
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        query = select(LcsJob)
        if job_id is not None:
            query = query.where(LcsJob.id == job_id)
        return list(session.execute(query).scalars())


def test_a_submission_the_broker_never_confirms_answers_503_and_the_sweeper_recovers_it(
    proxy: FreezableProxy, vhost_url: str, postgres_url: str
) -> None:
    silent = settings_for(through(proxy, vhost_url), database_url=postgres_url)
    client = create_app(silent).test_client()
    # One submission through the healthy proxy first, so the pooled connection is open.
    assert client.post("/api/jobs", json={"a": "warm", "b": "up"}).status_code == 202
    proxy.freeze()
    started = time.monotonic()
    response = client.post("/api/jobs", json={"a": "frozen", "b": "broker"})
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = response.get_json()
    assert "will be queued again automatically" in body["error"]
    assert body["status_url"] == f"/api/jobs/{body['id']}"
    assert elapsed < BOUNDS.publish_budget + SLACK_SECONDS
    [job] = rows(silent, body["id"])
    assert job.status == "pending", "kept for the sweeper, not deleted"

    # The sweeper (through a healthy node) publishes it again and marks it queued.
    healthy = make_celery(settings_for(vhost_url, database_url=postgres_url))
    republished = jobs.republish_stale_jobs(
        healthy.engine(), celery_publisher(healthy), older_than=dt.timedelta(0)
    )
    assert body["id"] in republished
    [job] = rows(silent, body["id"])
    assert job.status == "queued"
    # The warm-up job and every republished one (the session's database may hold others).
    assert queued(vhost_url, SMALL_QUEUE) == 1 + len(republished)


def test_a_submission_no_broker_takes_answers_503_and_stores_nothing(postgres_url: str) -> None:
    settings = settings_for(
        f"amqp://guest:guest@127.0.0.1:{free_port()}//", database_url=postgres_url
    )
    before = len(rows(settings))
    response = create_app(settings).test_client().post("/api/jobs", json={"a": "x", "b": "y"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.get_json() == {
        "error": "the task queue is unavailable; nothing was stored, retry",
        "dependency": "broker",
    }
    assert len(rows(settings)) == before


def test_the_sweeper_stops_at_the_first_unconfirmed_job_and_keeps_the_rest_pending(
    proxy: FreezableProxy, vhost_url: str, postgres_url: str
) -> None:
    settings = settings_for(through(proxy, vhost_url), database_url=postgres_url)
    engine = engine_for(settings.sqlalchemy_url)
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(2)]
    with Session(engine) as session, session.begin():
        session.add_all(
            LcsJob(id=job_id, queue=SMALL_QUEUE, status="pending", a="a", b="b", a_length=1,
                   b_length=1, created_at=jobs.utcnow() - dt.timedelta(hours=1), attempts=0)
            for job_id in ids
        )
    proxy.freeze()
    celery = make_celery(settings)
    try:
        with pytest.raises(jobs.SweepStopped, match="was not confirmed") as stopped:
            jobs.republish_stale_jobs(engine, celery_publisher(celery), older_than=dt.timedelta(0))
        assert stopped.value.republished == []
        with Session(engine) as session:
            statuses = session.execute(
                select(LcsJob.status, func.count()).where(LcsJob.id.in_(ids))
                .group_by(LcsJob.status)
            ).all()
        assert statuses == [("pending", 2)]
    finally:
        # The session's database is shared: leave no stale job for other tests' sweeps.
        with Session(engine) as session, session.begin():
            session.execute(delete(LcsJob).where(LcsJob.id.in_(ids)))


# ----------------------------------------------------------------------------------- worker


@pytest.fixture
def worker_environment(
    service_environment: dict[str, str], vhost_url: str, proxy: FreezableProxy
) -> dict[str, str]:
    """A worker whose failover list starts with the proxy (then the broker directly)."""
    return {
        **service_environment,
        "CELERY_BROKER_URL": f"{through(proxy, vhost_url)};{vhost_url}",
        "CELERY_BROKER_HEARTBEAT": "2",
        "CELERY_BROKER_CONNECT_TIMEOUT": "1",
    }


def start_record_worker(
    start_service: Callable[..., Service], environment: dict[str, str], name: str
) -> Service:
    command = [
        str(VENV_BIN / "celery"), "--app", "app.celery_app", "worker", "--queues", DEFAULT_QUEUE,
        "--concurrency", "1", "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip",
        "--loglevel", "INFO",
    ]
    return start_service(name, command, environment,
                         ready_when=lambda service: " ready." in service.log())


def completed(settings: AppSettings, prefix: str) -> int:
    return jobs.completion_summary(engine_for(settings.sqlalchemy_url), prefix).keys_completed


def test_a_worker_whose_node_freezes_moves_on_and_keeps_working_while_it_is_frozen(
    proxy: FreezableProxy, vhost_url: str, postgres_url: str, worker_environment: dict[str, str],
    start_service: Callable[..., Service],
) -> None:
    worker = start_record_worker(start_service, worker_environment, "frozen-node")
    assert f"127.0.0.1:{proxy.port}/" in worker.log(), "the worker started on the proxy"
    proxy.freeze()
    # Published straight to the broker: only a worker that left the frozen node can run them.
    direct = make_celery(settings_for(vhost_url, database_url=postgres_url))
    prefix = f"frozen-{os.getpid()}-{time.monotonic_ns()}"
    publisher = TaskPublisher(direct)
    for index in range(5):
        publisher.publish(TaskCall(name="record", args=(f"{prefix}-{index}", 0.0),
                                   queue=DEFAULT_QUEUE))
    wait_until(lambda: completed(direct.app_settings, prefix) == 5, timeout=60,
               what="the worker to run the tasks while its first node is frozen")
    assert proxy.frozen, "everything above happened while the node stayed frozen"
    assert "Connection to broker lost" in worker.log()
    assert f"Connected to amqp://guest:**@127.0.0.1:{BROKER_PORT}/" in worker.log()


def test_a_worker_whose_first_node_is_silent_from_the_start_still_starts(
    proxy: FreezableProxy, vhost_url: str, postgres_url: str, worker_environment: dict[str, str],
    start_service: Callable[..., Service],
) -> None:
    proxy.freeze()
    worker = start_record_worker(start_service, worker_environment, "silent-first")
    assert f"Connected to amqp://guest:**@127.0.0.1:{BROKER_PORT}/" in worker.log()
    direct = make_celery(settings_for(vhost_url, database_url=postgres_url))
    prefix = f"silent-first-{os.getpid()}-{time.monotonic_ns()}"
    TaskPublisher(direct).publish(TaskCall(name="record", args=(f"{prefix}-0", 0.0),
                                           queue=DEFAULT_QUEUE))
    wait_until(lambda: completed(direct.app_settings, prefix) == 1, timeout=30,
               what="the worker to run a task")


def test_flower_still_gets_worker_heartbeats_and_task_events(
    vhost_url: str, postgres_url: str, service_environment: dict[str, str],
    start_service: Callable[..., Service], tmp_path: Path,
) -> None:
    environment = {**service_environment, "CELERY_BROKER_URL": vhost_url}
    start_record_worker(start_service, environment, "monitored")
    app = make_celery(settings_for(vhost_url, database_url=postgres_url))
    seen: dict[str, int] = {}

    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(
            connection, handlers={"*": lambda event: seen.update(
                {event["type"]: seen.get(event["type"], 0) + 1})}
        )
        # What Flower does when it starts: ask the workers to send task events.
        app.control.enable_events()
        prefix = f"events-{os.getpid()}-{time.monotonic_ns()}"
        TaskPublisher(app).publish(
            TaskCall(name="record", args=(f"{prefix}-0", 0.0), queue=DEFAULT_QUEUE)
        )
        deadline = time.monotonic() + 30
        for _ in receiver.itercapture(limit=None, timeout=30, wakeup=False):
            if seen.get("worker-heartbeat") and seen.get("task-succeeded"):
                break
            if time.monotonic() > deadline:
                break
    assert seen.get("worker-heartbeat"), seen
    assert seen.get("task-succeeded"), seen
