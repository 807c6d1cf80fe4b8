"""The worker's consumer, tuned for broker failover: ``worker_consumer = "app.bootsteps:..."``.

Owns :class:`FailoverConsumer` (Celery's consumer with one start-up step replaced, its event
connection unconfirmed, and its reconnects starting after the node that failed) and that step,
:class:`ConnectedNodeDelayedDelivery`: the set-up of RabbitMQ native delayed delivery (the
``celery_delayed_*`` exchanges and quorum queues that carry countdown/ETA tasks, and the bindings
of our task queues to them).

Why the event connection publishes without confirms: the worker publishes its monitoring events
(``worker-heartbeat`` every 2 s, task events while Flower listens) from its event loop. With
``confirm_publish`` (which applies to every channel of a connection) each event waited for its
confirm with no timeout: a node that went silent (SIGSTOP, a partition) froze the event loop for
as long as the node was silent, so the AMQP heartbeat check never ran and the worker never
failed over (measured: no task completed for the whole 60 s freeze; celery/celery#2312). Events
are monitoring data with no delivery guarantee anyway (Flower counts a worker offline only
after several missed heartbeats), so nothing in the event loop waits on a confirm any more;
Flower still receives every event the broker gets. Task messages keep their confirms.

Why reconnects start after the failed node: kombu begins every new connection at the first URL
of the failover list; a frozen node still accepts TCP and then never answers the handshake, so
each reconnect (the consumer's and the event connection's) waited ``broker_connection_timeout``
on it first. The consumer remembers the node whose connection failed and hands kombu the list
rotated to start after it (``app.broker.failover_order``).

Why replace Celery's own step: Celery 5.7's ``DelayedDelivery.start`` opens a NEW connection to
EVERY URL of the failover list, one after the other, on every (re)connect of the consumer, and
retries a URL that refuses (sleeping 1, 3, 5 s) before the consumer may start consuming. After the
node a worker was connected to died, the worker reconnected to a live node within ~10 ms and then
sat ~18 s in that loop, retrying the dead node (measured with the local 3-node cluster). Exchanges,
queues and bindings are cluster-wide objects in RabbitMQ, so declaring them once, through the
connection the consumer already holds to a live node, is enough; a node that was down finds them
when it rejoins (its Mnesia/metadata store syncs from the cluster).

Failure handling: a connection error during the set-up propagates, so the consumer restarts the
way it does on any connection loss (failing over to the next URL); nothing here retries a URL by
itself. Any other error (e.g. a queue declared elsewhere with other arguments) is logged as
critical with the fix, and the worker keeps consuming: tasks without countdown keep flowing.

Does not own: which queues exist or their arguments (``app.settings``), the liveness heartbeat
(``app.celery_app``), or the delayed-delivery topology itself (kombu's
``kombu.transport.native_delayed_delivery`` declares it; we only choose the channel).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import bootsteps
from celery.utils.quorum_queues import detect_quorum_queues
from celery.utils.threads import bound_open_broker_sockets
from celery.worker.consumer import Consumer
from celery.worker.consumer.tasks import Tasks
from kombu.common import Broadcast
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from app.broker import endpoint, failover_order

log = logging.getLogger(__name__)

EVENT_CONNECTION_OPTIONS = {"confirm_publish": False}
"""Transport options of the worker's event connection (see the module docstring)."""
EVENT_CLOSE_TIMEOUT_SECONDS = 0.5
"""Longest wait per reply while the event connection is closed after a connection error: the
node it used may be the silent one (a healthy node replies in milliseconds)."""

CELERY_DELAYED_DELIVERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"
CONNECTED_NODE_DELAYED_DELIVERY_STEP = "app.bootsteps:ConnectedNodeDelayedDelivery"
VALID_QUEUE_TYPES = ("classic", "quorum")


class _OneChannel:
    """Hands kombu's declare functions the same channel each time they ask for one.

    kombu opens a fresh channel per call and never closes it; on a long-lived consumer
    connection that reconnects many times that would leak channels. One channel, closed after
    the set-up, does the same declarations.
    """

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def channel(self) -> Any:
        return self._channel


def set_up_delayed_delivery(connection: Any, queues: Any, queue_type: str) -> int:
    """Declare the delayed-delivery topology and bind ``queues`` to it, through ``connection``.

    Idempotent (every declaration is). Returns the number of queues bound. Raises the
    connection's own errors; the caller decides what a failure means.
    """
    if queue_type not in VALID_QUEUE_TYPES:
        raise ValueError(
            f"broker_native_delayed_delivery_queue_type: {queue_type!r} is not allowed; use "
            f"{' or '.join(VALID_QUEUE_TYPES)}"
        )
    channel = connection.channel()
    try:
        one = _OneChannel(channel)
        declare_native_delayed_delivery_exchanges_and_queues(one, queue_type)
        bound = 0
        for queue in queues:
            if isinstance(queue, Broadcast):
                continue
            bind_queue_to_native_delayed_delivery_exchange(one, queue)
            bound += 1
        return bound
    finally:
        # A channel of a connection that just died cannot be closed cleanly; nothing to report.
        with contextlib.suppress(Exception):
            channel.close()


class ConnectedNodeDelayedDelivery(bootsteps.StartStopStep):
    """Native delayed delivery set up through the consumer's own connection (see module doc)."""

    # Same place in the consumer's start order as Celery's step: after the task consumer exists,
    # before the event loop starts consuming.
    requires = (Tasks,)
    label = "DelayedDelivery"

    def include_if(self, c: Any) -> bool:
        # Same rule as Celery's step: only when a quorum queue is configured on RabbitMQ.
        return detect_quorum_queues(c.app, c.app.connection_for_write().transport.driver_type)[0]

    def start(self, c: Any) -> None:
        app = c.app
        queue_type = app.conf.broker_native_delayed_delivery_queue_type
        connection_errors = tuple(c.connection.connection_errors)
        try:
            bound = set_up_delayed_delivery(c.connection, app.amqp.queues.values(), queue_type)
        except connection_errors:
            # The node went away mid-set-up: the consumer restarts and fails over; our step
            # runs again on the next node.
            raise
        except ValueError:
            log.critical("native delayed delivery: invalid configuration", exc_info=True)
            raise
        except Exception:
            log.critical(
                "native delayed delivery could not be set up on %s; countdown/ETA tasks will "
                "not be delivered until it is. Check that no queue or exchange named "
                "celery_delayed_* (or one of our task queues) was declared with other arguments.",
                c.connection.as_uri(),
                exc_info=True,
            )
            return
        log.debug(
            "native delayed delivery set up through %s (%d queue(s) bound)",
            c.connection.as_uri(),
            bound,
        )


class FailoverConsumer(Consumer):
    """Celery's consumer with :class:`ConnectedNodeDelayedDelivery` in place of Celery's step,
    an unconfirmed event connection, and reconnects that start after the failed node."""

    class Blueprint(Consumer.Blueprint):
        name = "Consumer"
        default_steps = tuple(
            CONNECTED_NODE_DELAYED_DELIVERY_STEP if step == CELERY_DELAYED_DELIVERY_STEP else step
            for step in Consumer.Blueprint.default_steps
        )

    failed_endpoint: tuple[str, int] | None = None
    """``(host, port)`` of the node whose connection failed last; reconnects start after it."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            self.failed_endpoint = endpoint(self.connection.as_uri())
        # The Events step closes the old event connection politely when it restarts, which
        # waits for the node's reply; bound that wait, the node may be the silent one.
        dispatcher = getattr(self, "event_dispatcher", None)
        if dispatcher is not None and dispatcher.connection is not None:
            bound_open_broker_sockets(dispatcher.connection, EVENT_CLOSE_TIMEOUT_SECONDS)
        super().on_connection_error_after_connected(exc)

    def _failover_url(self, url: str) -> str:
        urls = [part for part in url.split(";") if part.strip()]
        return ";".join(failover_order(urls, self.failed_endpoint))

    def connection_for_read(self, heartbeat: float | None = None) -> Any:
        url = self._failover_url(self.app.conf.broker_read_url)
        return self.ensure_connected(
            self.app.connection_for_read(url=url, heartbeat=heartbeat)
        )

    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        """The event connection: Celery's Events step is the only user of the consumer's write
        connection (checked by a test against the pinned Celery), and events are published
        without confirms (see the module docstring)."""
        url = self._failover_url(url or self.app.conf.broker_write_url)
        return self.ensure_connected(
            self.app.connection_for_write(
                url=url, heartbeat=heartbeat, transport_options=EVENT_CONNECTION_OPTIONS
            )
        )
