"""Broker bounds without a broker: each wait has a bound, bad bounds are refused with the field,
every task publish through Celery carries the bounds, and reconnects start after the failed node.

The same bounds against a real broker that goes silent: ``test_silent_broker.py``.
"""

from __future__ import annotations

import pathlib
import re
import socket
from types import SimpleNamespace
from typing import Any

import celery as celery_package
import pytest

from app.bootsteps import EVENT_CONNECTION_OPTIONS, FailoverConsumer
from app.broker import BoundedAMQP, BrokerBounds, endpoint, failover_order
from app.celery_app import make_celery
from app.settings import AppSettings

URLS = (
    "amqp://u:p@rmq-0.example:5672/v",
    "amqp://u:p@rmq-1.example:5672/v",
    "amqp://u:p@rmq-2.example/v",
)


# ------------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("confirm_timeout", 0, "confirm_timeout: 0 is not allowed; give 0.1..300 s"),
        ("socket_timeout", float("nan"), "socket_timeout: nan is not allowed"),
        ("heartbeat", 1, "heartbeat: 1 is not allowed; give 2..600 s"),
        ("publish_budget", "8", "publish_budget: '8' is not allowed"),
        ("connect_timeout", True, "connect_timeout: True is not allowed"),
    ],
)
def test_a_bad_bound_is_refused_naming_the_field_and_the_range(
    field: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BrokerBounds(**{field: value})


def test_every_connection_confirms_and_bounds_its_socket_reads_writes_and_liveness() -> None:
    options = BrokerBounds(socket_timeout=3.5, tcp_user_timeout=4.0).transport_options()
    assert options["confirm_publish"] is True
    assert options["read_timeout"] == options["write_timeout"] == 3.5
    settings = options["socket_settings"]
    assert settings[socket.TCP_USER_TIMEOUT] == 4000
    assert settings[socket.TCP_KEEPIDLE] + settings[socket.TCP_KEEPINTVL] * settings[
        socket.TCP_KEEPCNT
    ] <= 60


def test_one_publish_attempt_is_bounded_well_under_ten_seconds() -> None:
    # A connect, then every reply (channel, declares, confirm) within one more bound: waits
    # that each stay within their own bound cannot add up past it.
    assert BrokerBounds().attempt_limit() == 2.0 + 5.0
    assert BrokerBounds(confirm_timeout=8, socket_timeout=3).attempt_limit() == 2.0 + 8.0


def test_the_app_uses_the_bounds_for_heartbeats_connects_and_transport_options() -> None:
    bounds = BrokerBounds(heartbeat=7.0, connect_timeout=1.5)
    app = make_celery(AppSettings(broker_bounds=bounds))
    assert isinstance(app.amqp, BoundedAMQP)
    assert app.conf.broker_heartbeat == 7.0
    assert app.conf.broker_connection_timeout == 1.5
    assert app.conf.broker_transport_options == bounds.transport_options()


class RecordingProducer:
    """Stands in for a kombu Producer: records what Celery asks it to publish."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.connection = SimpleNamespace()

    def publish(self, body: Any, **options: Any) -> None:
        self.published.append(options)


def test_every_task_publish_through_celery_waits_a_bounded_time_for_its_confirm() -> None:
    app = make_celery(AppSettings(broker_bounds=BrokerBounds(confirm_timeout=1.5,
                                                            socket_timeout=2.5)))
    producer = RecordingProducer()
    message = app.amqp.create_task_message("id-1", "noop", (), {})
    app.amqp.send_task_message(producer, "noop", message, queue="default", retry=False)
    # A caller that names its own bound keeps it.
    message = app.amqp.create_task_message("id-2", "noop", (), {})
    app.amqp.send_task_message(producer, "noop", message, queue="default", retry=False,
                               confirm_timeout=0.5, timeout=0.7)
    assert [(p["confirm_timeout"], p["timeout"]) for p in producer.published] == [
        (1.5, 2.5),
        (0.5, 0.7),
    ]


# ---------------------------------------------------------------------------- failover order


def test_the_failover_list_starts_after_the_node_that_failed() -> None:
    assert endpoint(URLS[2]) == ("rmq-2.example", 5672)
    assert endpoint("amqps://u:p@rmq-9.example/v") == ("rmq-9.example", 5671)
    assert failover_order(URLS, ("rmq-0.example", 5672)) == [URLS[1], URLS[2], URLS[0]]
    assert failover_order(URLS, ("rmq-2.example", 5672)) == list(URLS)
    assert failover_order(URLS, ("elsewhere", 5672)) == list(URLS)
    assert failover_order(URLS, None) == list(URLS)


def _consumer(failed: tuple[str, int] | None) -> FailoverConsumer:
    """The consumer's connection methods need only the app and the failed endpoint."""
    consumer = FailoverConsumer.__new__(FailoverConsumer)
    consumer.app = make_celery(AppSettings(broker_urls=URLS))
    consumer.failed_endpoint = failed
    consumer.ensure_connected = lambda connection: connection  # no network here
    return consumer


def test_the_worker_reconnects_starting_after_the_node_whose_connection_failed() -> None:
    consumer = _consumer(failed=("rmq-0.example", 5672))
    for connection in (consumer.connection_for_read(heartbeat=5), consumer.connection_for_write()):
        assert connection.hostname == "rmq-1.example"
        assert [endpoint(url)[0] for url in connection.alt] == [
            "rmq-1.example", "rmq-2.example", "rmq-0.example"
        ]


def test_the_worker_publishes_its_events_without_confirms_and_its_tasks_with_them() -> None:
    consumer = _consumer(failed=None)
    events = consumer.connection_for_write(heartbeat=5)
    assert events.transport_options["confirm_publish"] is False
    # Still bounded: the event connection keeps the socket timeouts.
    assert events.transport_options["read_timeout"] == BrokerBounds().socket_timeout
    tasks = consumer.app.connection_for_write()
    assert tasks.transport_options["confirm_publish"] is True
    assert EVENT_CONNECTION_OPTIONS == {"confirm_publish": False}


def test_only_the_events_step_uses_the_consumers_write_connection_in_the_pinned_celery() -> None:
    # FailoverConsumer.connection_for_write makes unconfirmed connections, which is right only
    # for monitoring events: if a Celery upgrade uses it for anything else, revisit it.
    root = pathlib.Path(celery_package.__file__).parent / "worker"
    users = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"\bc\.connection_for_write\(|self\.connection_for_write\(",
                     path.read_text())
    )
    assert users == ["consumer/events.py"]
