"""The window of unconfirmed publishes, against the real local RabbitMQ.

Each test publishes ``record`` tasks whose first argument is a key unique to the task, lets the
publisher choose the task ids, and then reads every message back from the queue. So "0 lost"
is every key present, "the same task id" is one id per key however often a key arrived, and
"exactly the unconfirmed messages were sent again" is: the copies the queue holds beyond one
per key are no more than the messages sent again, and those are no more than the window (not
the whole stream, which a publisher that starts over would send).

A nack is real: a quorum queue at its length limit with ``x-overflow: reject-publish`` answers
``basic.nack``. A lost connection is a relay in front of the broker that is closed (a dead
node); a silent node is the same relay frozen (``drills.freezable_proxy``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from kombu import Queue

from app.broker import BrokerBounds, PublishUnconfirmed, TaskCall
from app.celery_app import make_celery
from app.publish_window import MAX_WINDOW, WindowedPublisher, check_window
from app.settings import DEFAULT_QUEUE, AppSettings
from drills.freezable_proxy import FreezableProxy
from drills.local_services import private_vhost
from drills.scheduler_window import arrivals, read_back
from tests.app.conftest import through

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BOUNDS = BrokerBounds(connect_timeout=1.0, confirm_timeout=1.5, socket_timeout=1.5,
                      publish_budget=20.0)
SLACK_SECONDS = 3.0
"""Scheduling noise on a shared machine."""


@pytest.fixture
def vhost_url() -> Iterator[str]:
    with private_vhost("window") as url:
        yield url


def celery_for(*urls: str):  # type: ignore[no-untyped-def]
    return make_celery(AppSettings(broker_urls=urls, broker_bounds=BOUNDS))


def calls(total: int, *, queue: str = DEFAULT_QUEUE,
          on_call: Callable[[int], None] | None = None) -> Iterator[TaskCall]:
    for index in range(total):
        if on_call is not None:
            on_call(index)
        yield TaskCall(name="record", args=(f"key-{index:05d}", 0.0), queue=queue)


def check_every_key_once_or_resent(received: list[tuple[str, str]], total: int,
                                   republished: int, window: int) -> int:
    """Every key arrived, each with one task id; returns the copies beyond one per key."""
    found = arrivals(received, [f"key-{index:05d}" for index in range(total)])
    assert found.lost == (), f"{len(found.lost)} task(s) lost"
    assert found.keys_with_several_ids == (), "a resend got a new task id"
    assert found.duplicates <= republished <= window, (found.duplicates, republished, window)
    return found.duplicates


# ---------------------------------------------------------------------------- the window size


@pytest.mark.parametrize("value", [0, -1, MAX_WINDOW + 1, True, 2.0, "8"])
def test_a_bad_window_is_refused_naming_the_range(value: object) -> None:
    with pytest.raises(ValueError, match=rf"window: .* is not allowed; give a whole number "
                                         rf"1\.\.{MAX_WINDOW}"):
        check_window(value)


def test_the_window_bounds_the_unconfirmed_messages_and_every_task_is_confirmed(
    vhost_url: str,
) -> None:
    celery = celery_for(vhost_url)
    total, window = 600, 16
    trace = WindowedPublisher(celery, window=window).publish(calls(total))
    assert (trace.confirmed, trace.nacked, trace.republished, trace.connections) == (
        total, 0, 0, 1
    )
    received = read_back(vhost_url, DEFAULT_QUEUE, expect_at_least=total)
    assert check_every_key_once_or_resent(received, total, 0, window) == 0


# ------------------------------------------------------------------------------------- nacks


def test_a_nack_sends_exactly_the_nacked_messages_again(vhost_url: str) -> None:
    celery = celery_for(vhost_url)
    # A quorum queue that holds 20 messages and nacks the rest until a consumer makes room.
    celery.amqp.queues.add(Queue("limited", queue_arguments={
        "x-queue-type": "quorum", "x-max-length": 20, "x-overflow": "reject-publish",
    }))
    total, window = 400, 50
    publisher = WindowedPublisher(celery, window=window, pause=0.01)
    done = threading.Event()
    result: dict[str, object] = {}

    def publish() -> None:
        try:
            result["trace"] = publisher.publish(calls(total, queue="limited"))
        except BaseException as error:
            result["error"] = error
        finally:
            done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    # The queue must exist before the consumer starts: the publisher declares it first.
    time.sleep(0.5)
    received = read_back(vhost_url, "limited", expect_at_least=total, stop=done)
    thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    trace = result["trace"]
    assert trace.nacked > 0, "the queue never refused a message: the test proved nothing"
    assert trace.republished == trace.nacked and trace.connections == 1
    # A nacked message was not stored: sent again once per nack, each key arrives exactly once.
    assert sorted(Counter(key for key, _ in received).values()) == [1] * total
    assert check_every_key_once_or_resent(received, total, 0, window) == 0


# ----------------------------------------------------------------- lost and silent connections


def test_a_connection_lost_mid_window_sends_only_the_unconfirmed_messages_again(
    proxy: FreezableProxy, vhost_url: str
) -> None:
    celery = celery_for(through(proxy, vhost_url), vhost_url)
    total, window, stall_at = 3000, 100, 1500
    cut = threading.Timer(0.3, proxy.close)

    def stall(index: int) -> None:
        # Confirms stop first, so the window fills with written, unconfirmed messages; then
        # every relayed connection closes (the node died), well before the confirm deadline.
        if index == stall_at:
            proxy.freeze()
            cut.start()

    trace = WindowedPublisher(celery, window=window).publish(calls(total, on_call=stall))
    cut.join()
    assert trace.confirmed == total
    assert trace.connections == 2 and len(trace.errors) == 1
    assert "no confirm" not in trace.errors[0], "the loss was noticed, not waited out"
    assert trace.republished >= 1
    received = read_back(vhost_url, DEFAULT_QUEUE, expect_at_least=total)
    duplicates = check_every_key_once_or_resent(received, total, trace.republished, window)
    print(f"connection lost after task {stall_at}: {trace.republished} sent again, "
          f"{duplicates} duplicate(s) in the queue")


def test_a_node_that_stops_confirming_mid_window_cannot_stall_the_publisher(
    proxy: FreezableProxy, vhost_url: str
) -> None:
    celery = celery_for(through(proxy, vhost_url), vhost_url)
    total, window, freeze_at = 2000, 100, 1000
    frozen_at: list[float] = []

    def freeze(index: int) -> None:
        if index == freeze_at:
            proxy.freeze()
            frozen_at.append(time.monotonic())

    trace = WindowedPublisher(celery, window=window).publish(calls(total, on_call=freeze))
    assert trace.confirmed == total
    assert "no confirm within 1.5 s" in trace.errors[0]
    # The oldest unconfirmed message's deadline ended the wait on the frozen node.
    assert trace.longest_attempt_seconds < BOUNDS.confirm_timeout + SLACK_SECONDS
    assert time.monotonic() - frozen_at[0] < BOUNDS.confirm_timeout + 10 * SLACK_SECONDS
    received = read_back(vhost_url, DEFAULT_QUEUE, expect_at_least=total)
    check_every_key_once_or_resent(received, total, trace.republished, window)


def test_with_every_node_silent_the_publisher_gives_up_within_its_budget(
    proxy: FreezableProxy, vhost_url: str
) -> None:
    celery = celery_for(through(proxy, vhost_url))
    budget = 4.0

    def freeze(index: int) -> None:
        if index == 100:
            proxy.freeze()

    started = time.monotonic()
    with pytest.raises(PublishUnconfirmed, match="were written but not confirmed within 4 s"):
        WindowedPublisher(celery, window=50, budget=budget).publish(calls(300, on_call=freeze))
    assert time.monotonic() - started < budget + BOUNDS.attempt_limit() + SLACK_SECONDS
