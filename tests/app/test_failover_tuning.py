"""The worker's failover tuning: delayed delivery never waits on a dead broker URL, and
countdown/ETA still work on the quorum queue with it.

Against the real local RabbitMQ (own vhost) and PostgreSQL (own database), with real workers.
A "dead node" here is a TCP listener that accepts and hangs up at once, and counts every
connection: whatever connects to it is trying a URL that cannot serve.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kombu import Connection
from sqlalchemy.orm import Session

from app.bootsteps import (
    CELERY_DELAYED_DELIVERY_STEP,
    CONNECTED_NODE_DELAYED_DELIVERY_STEP,
    ConnectedNodeDelayedDelivery,
    FailoverConsumer,
)
from app.celery_app import make_celery
from app.db import TaskCompletion, engine_for
from app.settings import DEFAULT_QUEUE, AppSettings, celery_settings
from tests.app.conftest import wait_until


class DeadNode:
    """Accepts TCP connections and closes them at once; counts them."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            client.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join(timeout=5)


@pytest.fixture
def dead_node() -> Iterator[DeadNode]:
    node = DeadNode()
    try:
        yield node
    finally:
        node.close()


def _failover_list(live_url: str, dead: DeadNode) -> str:
    vhost = live_url.rsplit("/", 1)[1]
    return f"{live_url};amqp://guest:guest@127.0.0.1:{dead.port}/{vhost}"


def _consumer_on(live_url: str, broker_list: str) -> tuple[SimpleNamespace, Connection]:
    """What the step sees of Celery's consumer: the app and the connection it holds."""
    app = make_celery(AppSettings(broker_urls=tuple(broker_list.split(";"))))
    connection = Connection(live_url)
    connection.ensure_connection(max_retries=1)
    return SimpleNamespace(app=app, connection=connection), connection


# ------------------------------------------------------------------------------- unit


def test_the_app_installs_the_failover_consumer_through_its_settings() -> None:
    assert celery_settings({})["worker_consumer"] == "app.bootsteps:FailoverConsumer"
    steps = FailoverConsumer.Blueprint.default_steps
    assert CONNECTED_NODE_DELAYED_DELIVERY_STEP in steps
    assert CELERY_DELAYED_DELIVERY_STEP not in steps
    # Same position: after the task consumer exists, before the event loop consumes.
    celery_steps = list(FailoverConsumer.__mro__[1].Blueprint.default_steps)
    position = celery_steps.index(CELERY_DELAYED_DELIVERY_STEP)
    assert steps[position] == CONNECTED_NODE_DELAYED_DELIVERY_STEP


# ------------------------------------------------------------------- real broker, in process


@pytest.mark.integration
def test_delayed_delivery_set_up_declares_through_the_live_connection_only(
    broker_url: str, dead_node: DeadNode
) -> None:
    consumer, connection = _consumer_on(broker_url, _failover_list(broker_url, dead_node))
    try:
        ConnectedNodeDelayedDelivery(SimpleNamespace()).start(consumer)
        channel = connection.channel()
        # The whole topology exists: 28 delay levels and the delivery exchange.
        for level in (0, 13, 27):
            channel.queue_declare(f"celery_delayed_{level}", passive=True)
        channel.exchange_declare("celery_delayed_delivery", "topic", passive=True)
        channel.close()
    finally:
        connection.release()
    assert dead_node.connections == 0


@pytest.mark.integration
def test_celerys_own_step_would_retry_the_dead_url(
    broker_url: str, dead_node: DeadNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why the step is replaced, and proof that the dead node above notices a connection attempt:
    # Celery's step sets itself up through every URL and retries the dead one (1 + 3 + 5 s in
    # production; shortened here).
    from celery.worker.consumer import delayed_delivery

    monkeypatch.setattr(delayed_delivery, "RETRY_INTERVAL", 0.01)
    monkeypatch.setattr(delayed_delivery, "MAX_RETRIES", 1)
    consumer, connection = _consumer_on(broker_url, _failover_list(broker_url, dead_node))
    try:
        delayed_delivery.DelayedDelivery(SimpleNamespace()).start(consumer)
    finally:
        connection.release()
    assert dead_node.connections >= 1


# ---------------------------------------------------------------------- real workers


def _row(settings: AppSettings, key: str) -> TaskCompletion | None:
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        found = session.get(TaskCompletion, key)
        if found is not None:
            session.expunge(found)
        return found


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_worker_whose_failover_list_names_a_dead_node_never_connects_to_it(
    service_environment: dict[str, str], start_worker, dead_node: DeadNode
) -> None:
    live = service_environment["CELERY_BROKER_URL"]
    # The dead node comes second: the worker connects to the live one, and the delayed-delivery
    # set-up (Celery's own would connect to every URL of the list) must not try the other.
    service_environment["CELERY_BROKER_URL"] = _failover_list(live, dead_node)
    worker = start_worker(DEFAULT_QUEUE, name="deadurl")
    settings = AppSettings.from_environ(service_environment)
    celery = make_celery(settings)
    key = f"dead-url-{time.time_ns()}"
    celery.send_task("record", args=[key], queue=DEFAULT_QUEUE, countdown=1)
    wait_until(
        lambda: (row := _row(settings, key)) is not None and row.executions == 1,
        timeout=30,
        what="the countdown task through the worker with a dead URL in its list",
    )
    assert dead_node.connections == 0, worker.log()[-3000:]
    assert "Retrying delayed delivery setup" not in worker.log()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_countdown_and_eta_tasks_wait_on_the_quorum_queue_without_blocking_others(
    service_environment: dict[str, str], start_worker
) -> None:
    # One pool process, prefetch 1: if a countdown task were held in the worker (what happens
    # without native delayed delivery), every task behind it would wait for the countdown.
    start_worker(DEFAULT_QUEUE, concurrency=1, name="countdown")
    settings = AppSettings.from_environ(service_environment)
    celery = make_celery(settings)
    prefix = f"countdown-{time.time_ns()}"
    sent_at = dt.datetime.now(dt.UTC)
    celery.send_task("record", args=[f"{prefix}-countdown"], queue=DEFAULT_QUEUE, countdown=3)
    celery.send_task(
        "record",
        args=[f"{prefix}-eta"],
        queue=DEFAULT_QUEUE,
        eta=sent_at + dt.timedelta(seconds=3),
    )
    immediate = [f"{prefix}-now-{index}" for index in range(5)]
    for key in immediate:
        celery.send_task("record", args=[key], queue=DEFAULT_QUEUE)

    def completed(key: str) -> TaskCompletion | None:
        row = _row(settings, key)
        return row if row is not None and row.executions >= 1 else None

    for key in (f"{prefix}-countdown", f"{prefix}-eta"):
        wait_until(lambda key=key: completed(key), timeout=60, what=f"{key} to complete")
    delayed = [completed(f"{prefix}-countdown"), completed(f"{prefix}-eta")]
    now = [completed(key) for key in immediate]
    assert all(row is not None for row in now)
    last_immediate = max(row.first_completed_at for row in now)  # type: ignore[union-attr]
    for row in delayed:
        assert row is not None
        # Native delayed delivery has whole-second precision; it never runs early by a second.
        assert row.first_started_at - sent_at >= dt.timedelta(seconds=2)
        assert row.executions == 1
        # The tasks sent after it did not wait for it.
        assert last_immediate < row.first_started_at
