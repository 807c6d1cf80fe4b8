"""Bounded broker operations: no client of the platform waits on a broker node that went silent.

Why: a RabbitMQ node that stops answering without closing its connections (a stalled VM, a lost
zone, a partition, a SIGSTOP) leaves every client blocked in a read that never returns. Measured
here before these bounds: a Celery worker stopped consuming for the whole 60 s freeze of its node
because its event loop waited, without a timeout, for the publisher confirm of its own
``worker-heartbeat`` event (celery/celery#2312), so its AMQP heartbeat check never ran and it
never failed over; a ``send_task`` blocked for the whole freeze as well. A frozen node's kernel
still acknowledges TCP, so socket-level liveness alone never notices: only application-level
bounds do.

Owns:

- :class:`BrokerBounds`: every wait's bound (publisher confirm, socket reads and writes, TCP
  liveness, AMQP heartbeats, a publish's total budget) and the kombu / py-amqp options they
  become (:meth:`BrokerBounds.transport_options`);
- :class:`BoundedAMQP` (the app's ``amqp_cls``): every task message Celery publishes
  (``apply_async``, ``send_task``, chords, retries) waits at most ``confirm_timeout`` for its
  confirm and ``socket_timeout`` for its write, instead of for ever;
- :func:`failover_order`: the failover list rotated to start after a node that failed, so a
  reconnect goes to the next node instead of waiting on the silent one again;
- :class:`TaskPublisher`: publish one task within a total budget, node after node of the
  failover list; it raises :class:`PublishRefused` when nothing reached a broker that could
  have kept it, or :class:`PublishUnconfirmed` when a message was written but never confirmed
  (it may be enqueued: the caller must keep what it needs to publish again);
- the pieces every publisher shares: :class:`BoundedPublisher` (its waits, from the bounds),
  :func:`replies_within` (connect through the failover list
  and bound every reply to a deadline), :func:`retryable_errors` and :func:`drop` (forget a
  connection without waiting on its node).

Does not own: reading or validating the settings (``app.settings``), the worker's consumer
steps (``app.bootsteps`` uses :func:`failover_order`), publishing a stream of tasks with a
window of unconfirmed messages (``app.publish_window``, built on the pieces above), or what a
caller answers its own caller (``app.web``, ``app.scheduler``).
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from amqp.exceptions import MessageNacked
from celery.app.amqp import AMQP
from kombu.exceptions import OperationalError

# --- bounds ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BrokerBounds:
    """How long any broker operation may wait. Defaults are the platform's; see each reason."""

    connect_timeout: float = 2.0
    """TCP connect and each AMQP handshake step, per URL. A handshake inside the cluster network
    takes milliseconds; 2 s still tolerates a loaded broker. A frozen node accepts the TCP
    connection (its kernel does) and then never speaks: this bound moves on to the next URL."""
    confirm_timeout: float = 5.0
    """Longest wait for one publisher confirm. A quorum write is confirmed in ~5 ms here; a
    leader election after a node loss holds confirms for a few seconds. Past this, the node is
    treated as silent and the publish goes to the next node."""
    socket_timeout: float = 5.0
    """Longest blocking socket read or write with no other bound (a channel open, a queue
    declare, closing a connection, a write into a full send buffer)."""
    tcp_user_timeout: float = 5.0
    """Longest time sent data may stay unacknowledged before the kernel drops the connection
    (TCP_USER_TIMEOUT): catches a partitioned peer as soon as anything is sent to it. py-amqp's
    default is 1 s; GCE live migration can pause a VM's network for about a second, so 5 s."""
    heartbeat: float = 5.0
    """AMQP heartbeat interval. A connection is declared dead after two missed intervals, so
    the worker notices a silent node within ~10 s (RabbitMQ advises no less than 5 s)."""
    heartbeat_checks_per_interval: float = 5.0
    """How often per interval the worker checks (and sends) heartbeats: every second at 5 s, so
    detection is not delayed by up to half an interval."""
    publish_budget: float = 8.0
    """Total time one publish by the web app or the sweeper may take, failover included."""

    def __post_init__(self) -> None:
        for name, low, high in (
            ("connect_timeout", 0.1, 60.0),
            ("confirm_timeout", 0.1, 300.0),
            ("socket_timeout", 0.5, 300.0),
            ("tcp_user_timeout", 0.5, 300.0),
            ("heartbeat", 2.0, 600.0),
            ("heartbeat_checks_per_interval", 1.0, 20.0),
            ("publish_budget", 0.5, 600.0),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or not low <= value <= high
            ):
                raise ValueError(f"{name}: {value!r} is not allowed; give {low:g}..{high:g} s")

    def transport_options(self) -> dict[str, Any]:
        """py-amqp connection options (Celery's ``broker_transport_options``)."""
        return {
            # Publisher confirms: apply_async returns only after RabbitMQ has the message on a
            # quorum of nodes; without them ~60% of tasks sent during a node kill were lost.
            "confirm_publish": True,
            # SO_RCVTIMEO / SO_SNDTIMEO: the backstop for every blocking read or write that has
            # no bound of its own (py-amqp waits for RPC replies with no timeout).
            "read_timeout": self.socket_timeout,
            "write_timeout": self.socket_timeout,
            "socket_settings": {
                socket.TCP_USER_TIMEOUT: int(self.tcp_user_timeout * 1000),
                # Idle pooled connections (publishers send no heartbeats) to a vanished peer
                # are found within 20 + 3 x 5 s instead of py-amqp's 60 + 9 x 10 s.
                socket.TCP_KEEPIDLE: 20,
                socket.TCP_KEEPINTVL: 5,
                socket.TCP_KEEPCNT: 3,
                # py-amqp's own default, kept: small frames (confirms, acks) leave at once.
                socket.TCP_NODELAY: 1,
            },
        }

    def attempt_limit(self) -> float:
        """The longest one publish attempt of :class:`TaskPublisher` may take: a connect, then
        every reply it waits for (channel, declares, the confirm) within one more bound.
        7 s with the defaults, so a publish moves to the next node well within 10 s."""
        return self.connect_timeout + max(self.socket_timeout, self.confirm_timeout)


# --- every publish through Celery ---------------------------------------------------------------


class BoundedAMQP(AMQP):
    """Celery's AMQP API with every task publish's confirm wait and socket write bounded.

    Celery passes ``confirm_timeout`` and ``timeout`` to kombu only when the caller names them,
    and nothing else bounds the confirm wait (py-amqp waits for ever); Celery has no setting for
    either. This class fills in the app's bounds (:func:`bounds_of`) whenever a caller did not,
    so tasks that publish tasks (chords, retries, countdowns) and any ``apply_async`` are
    bounded too. A confirm that does not come in time raises a connection error
    (``socket.timeout``); Celery's publish retry then reconnects to the next node of the
    failover list.
    """

    def _create_task_sender(self):  # type: ignore[no-untyped-def]
        send = super()._create_task_sender()
        bounds = bounds_of(self.app)

        def send_task_message(producer, name, message, **options):  # type: ignore[no-untyped-def]
            if options.get("confirm_timeout") is None:
                options["confirm_timeout"] = bounds.confirm_timeout
            if options.get("timeout") is None:
                options["timeout"] = bounds.socket_timeout
            return send(producer, name, message, **options)

        return send_task_message


def bounds_of(celery: Any) -> BrokerBounds:
    """The bounds an app was built with (``HaCelery.app_settings``), else the defaults."""
    settings = getattr(celery, "app_settings", None)
    return getattr(settings, "broker_bounds", None) or BrokerBounds()


# --- failover order ----------------------------------------------------------------------------


def endpoint(url: str) -> tuple[str, int]:
    """``(host, port)`` of an AMQP URL (port 5672, or 5671 for amqps, when not given)."""
    parts = urlsplit(url)
    default = 5671 if parts.scheme == "amqps" else 5672
    return (parts.hostname or "localhost", parts.port or default)


def failover_order(urls: Sequence[str], failed: tuple[str, int] | None) -> list[str]:
    """The failover list starting right after the URL of the node that ``failed``.

    kombu starts every new connection at the first URL. After that node went silent, a new
    connection would wait there again (a frozen node accepts the TCP connection and then never
    answers the handshake) before moving on; rotating keeps round-robin order and puts the
    failed node last. Unknown or no failed endpoint: the list as given.
    """
    urls = list(urls)
    if failed is None:
        return urls
    for index, url in enumerate(urls):
        if endpoint(url) == failed:
            return urls[index + 1 :] + urls[: index + 1]
    return urls


# --- one bounded publish -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TaskCall:
    """One task to publish by name (publishers that only know the wire contract)."""

    name: str
    args: tuple[Any, ...] = ()
    queue: str
    task_id: str | None = None
    countdown: float | None = None


class PublishFailed(Exception):
    """The broker did not confirm the task within the publish budget. Retryable: publishing
    again (now, or later through the sweeper) is the answer; tasks are idempotent."""

    def __init__(self, message: str, *, attempts: int, errors: Sequence[str]) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.errors = list(errors)


class PublishRefused(PublishFailed):
    """No broker took the message: every attempt failed before it was written, or was nacked.
    Nothing was enqueued."""


class PublishUnconfirmed(PublishFailed):
    """A message was written to a broker that then gave no confirm in time: it may be enqueued
    (at least once). Keep what is needed to publish it again."""


@dataclass
class PublishTrace:
    """What one successful publish took."""

    attempts: int = 0
    seconds: float = 0.0
    longest_attempt_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """One line per failed attempt, in order."""


class BoundedPublisher:
    """What every publisher of the app may wait, read once from the app's bounds.

    ``budget``: seconds one task may take from its first attempt to its confirm, failovers
    included (default: the app's ``publish_budget``, :func:`bounds_of`); ``pause``: seconds
    between a failed attempt and the next.
    """

    def __init__(self, celery: Any, *, budget: float | None = None, pause: float = 0.1) -> None:
        self.celery = celery
        bounds = bounds_of(celery)
        self.budget = float(budget if budget is not None else bounds.publish_budget)
        self.confirm_timeout = bounds.confirm_timeout
        self.write_timeout = bounds.socket_timeout
        self.attempt_limit = bounds.attempt_limit()
        self.pause = pause


class TaskPublisher(BoundedPublisher):
    """Publishes tasks with a total budget each, failing over node by node.

    ``connection``: a kombu connection the publisher may use for every publish (one per
    publishing thread: it is not thread-safe); without it, each publish borrows one from the
    app's connection pool (the web app's threads). ``budget``: seconds one :meth:`publish` may
    take in total (default: the app's ``publish_budget``, :func:`bounds_of`).
    ``give_up_when_unreachable``: seconds after which a publish stops early when every attempt
    so far failed to connect (no node accepts connections: the broker is down, not electing a
    leader or silent). ``None`` (default) spends the whole budget. The web app gives up after
    1 s so a submission during a broker outage answers 503 within 2 s instead of the budget.
    """

    def __init__(self, celery: Any, *, connection: Any = None, budget: float | None = None,
                 pause: float = 0.1, give_up_when_unreachable: float | None = None) -> None:
        super().__init__(celery, budget=budget, pause=pause)
        self.connection = connection
        self.give_up_when_unreachable = give_up_when_unreachable
        self._retryable: tuple[type[BaseException], ...] | None = None

    def publish(self, call: TaskCall) -> PublishTrace:
        """Publish ``call`` and wait for its confirm; raise :class:`PublishFailed` when the
        budget is spent (:class:`PublishRefused` or :class:`PublishUnconfirmed`)."""
        started = time.monotonic()
        deadline = started + self.budget
        trace = PublishTrace()
        written_unconfirmed = False
        only_connect_failures = True
        while True:
            remaining = deadline - time.monotonic()
            unreachable = (
                self.give_up_when_unreachable is not None
                and trace.attempts > 0
                and only_connect_failures
                and time.monotonic() - started >= self.give_up_when_unreachable
            )
            if (remaining <= 0 or unreachable) and trace.attempts:
                failure = PublishUnconfirmed if written_unconfirmed else PublishRefused
                what = (
                    "was written but not confirmed" if written_unconfirmed
                    else "was not taken by any broker node"
                )
                spent = (
                    f"within {self.budget:g} s" if remaining <= 0
                    else f"(no node accepted a connection for {time.monotonic() - started:.1f} s)"
                )
                raise failure(
                    f"task {call.name!r} {what} {spent} "
                    f"({trace.attempts} attempt(s); last: {trace.errors[-1]})",
                    attempts=trace.attempts,
                    errors=trace.errors,
                )
            trace.attempts += 1
            attempt_started = time.monotonic()
            # Each wait is bounded on its own; the attempt as a whole is bounded too, so waits
            # that each stay within their bound (a slow declare, then a slow confirm) cannot
            # add up past it.
            attempt_deadline = attempt_started + min(self.attempt_limit, max(remaining, 0.1))
            connection, borrowed = self._connection()
            written = False
            try:
                producer = self._prepare(connection, call, attempt_deadline)
                written = True
                left = max(0.1, attempt_deadline - time.monotonic())
                self.celery.send_task(
                    call.name,
                    args=call.args,
                    queue=call.queue,
                    task_id=call.task_id,
                    countdown=call.countdown,
                    producer=producer,
                    retry=False,
                    confirm_timeout=min(self.confirm_timeout, left),
                    timeout=min(self.write_timeout, left),
                )
                elapsed = time.monotonic() - attempt_started
                trace.longest_attempt_seconds = max(trace.longest_attempt_seconds, elapsed)
                trace.seconds = time.monotonic() - started
                return trace
            except MessageNacked as error:
                # The broker answered "not taken" (e.g. a queue over its limit): not enqueued.
                trace.errors.append(f"nacked by {connection.host}: {error!r}")
                only_connect_failures = False
            except self._retryable_errors(connection) as error:
                written_unconfirmed = written_unconfirmed or written
                only_connect_failures = only_connect_failures and not written
                phase = "publish/confirm" if written else "connect"
                trace.errors.append(f"{phase} on {connection.host}: {type(error).__name__}: "
                                    f"{error}")
                drop(connection)
            finally:
                trace.longest_attempt_seconds = max(
                    trace.longest_attempt_seconds, time.monotonic() - attempt_started
                )
                if borrowed:
                    connection.release()
            time.sleep(min(self.pause, max(0.0, deadline - time.monotonic())))

    def _connection(self) -> tuple[Any, bool]:
        if self.connection is not None:
            return self.connection, False
        return self.celery.pool.acquire(block=True, timeout=self.budget), True

    def _prepare(self, connection: Any, call: TaskCall, attempt_deadline: float) -> Any:
        """Connect, open the channel and declare the queue: nothing is sent to a queue yet, so
        a failure here means the task was not enqueued."""
        with replies_within(connection, attempt_deadline):
            producer = self.celery.amqp.Producer(connection, auto_declare=False)
            producer.maybe_declare(self.celery.amqp.queues[call.queue])
        return producer

    def _retryable_errors(self, connection: Any) -> tuple[type[BaseException], ...]:
        if self._retryable is None:
            self._retryable = retryable_errors(connection)
        return self._retryable


@contextlib.contextmanager
def replies_within(connection: Any, attempt_deadline: float) -> Iterator[None]:
    """Connect ``connection`` (node after node of its failover list) and bound every reply
    waited for inside the block (channel open, declares) by ``attempt_deadline``
    (``time.monotonic()``); a reply that does not come in time raises ``socket.timeout``."""
    connection.ensure_connection(
        max_retries=max(0, len(connection.alt) - 1) if connection.alt else 0,
        interval_start=0,
        interval_step=0,
        timeout=max(0.1, attempt_deadline - time.monotonic()),
    )
    sock = connection.connection.sock
    # py-amqp waits for RPC replies with no timeout of its own (only SO_RCVTIMEO, per
    # read); a socket timeout bounds the channel open and the declares to the attempt.
    sock.settimeout(max(0.1, attempt_deadline - time.monotonic()))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)


def retryable_errors(connection: Any) -> tuple[type[BaseException], ...]:
    """What a publish on ``connection`` may fail with that another attempt (on the next node)
    can cure."""
    return (
        *connection.connection_errors,
        *connection.channel_errors,
        OperationalError,
        OSError,
    )


def drop(connection: Any) -> None:
    """Forget a connection without talking to its (possibly silent) node, then move to the
    next URL of the failover list: a polite close would wait for the silent node's reply."""
    with contextlib.suppress(Exception):
        connection.collect()
    with contextlib.suppress(Exception):
        connection.maybe_switch_next()
