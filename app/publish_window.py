"""Publishing many tasks with a bounded window of unconfirmed messages per connection.

Why: waiting for each publisher confirm before sending the next message leaves the connection
idle for a full round trip through the quorum (~5 ms here) per task, so one connection tops out
near 200 tasks/s. With a window, up to ``window`` messages are written before their confirms
come back; RabbitMQ confirms them in order, often many in one ``basic.ack`` (``multiple``).
The guarantee is the same as one confirm per message: a task counts as sent only once the
broker confirmed it.

Owns:

- :class:`WindowedPublisher`: a stream of :class:`~app.broker.TaskCall` on one connection in
  confirm mode with at most ``window`` unconfirmed messages. A ``basic.nack`` sends exactly the
  nacked messages again; a lost connection, a write that fails, or a node that stops
  confirming (no confirm for the oldest message within ``confirm_timeout``) sends exactly the
  unconfirmed messages again, on the next node of the failover list. Every message keeps its
  task id across resends, so a message that was stored but whose confirm was lost arrives
  twice with the same id: tasks are idempotent (at least once is the contract), and a
  consumer can drop the copy by id.
- :class:`WindowTrace` (what a run took) and :func:`check_window` (the window's range).

Does not own: the bounds (``app.broker.BrokerBounds``: confirm timeout, socket timeouts, the
publish budget), connecting within a deadline and forgetting a dead connection
(``app.broker.replies_within`` / ``app.broker.drop``, shared with ``TaskPublisher``), or the
command line and its threads (``app.scheduler``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from app.broker import (
    BoundedPublisher,
    PublishRefused,
    PublishUnconfirmed,
    TaskCall,
    drop,
    replies_within,
    retryable_errors,
)

DEFAULT_WINDOW = 100
"""Unconfirmed messages per connection. ~100 keeps a connection busy through the quorum's
round trip here (the rate stops growing past ~50-200) while bounding what a failover sends
again, and what RabbitMQ holds per channel, to 100 messages."""
MAX_WINDOW = 10_000


def check_window(value: object) -> int:
    """``value`` as a window size, or ``ValueError`` naming the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW:
        raise ValueError(
            f"window: {value!r} is not allowed; give a whole number 1..{MAX_WINDOW} "
            f"(unconfirmed messages per connection; 1 waits for each confirm)"
        )
    return value


@dataclass
class WindowTrace:
    """What one :meth:`WindowedPublisher.publish` run took."""

    confirmed: int = 0
    nacked: int = 0
    """Messages the broker answered with ``basic.nack`` (not stored; each sent again)."""
    republished: int = 0
    """Messages sent again: nacked, or unconfirmed when their connection failed."""
    connections: int = 0
    """Connections opened: 1, plus one per failover."""
    longest_confirm_seconds: float = 0.0
    """Longest time from a message's first write to its confirm, failovers included."""
    longest_attempt_seconds: float = 0.0
    """Longest time one write waited on its connection: until its confirm, or until the
    connection was given up (on a silent node, about ``confirm_timeout``)."""
    errors: list[str] = field(default_factory=list)
    """One line per failed connection or confirm wait, in order."""


@dataclass
class _Message:
    call: TaskCall
    first_sent: float
    last_sent: float = 0.0
    sends: int = 0
    maybe_stored: bool = False
    """Written, then its connection failed before a confirm: it may be in the queue."""


class _ConnectionFailed(Exception):
    """The current connection can no longer be used; the message says why."""


class WindowedPublisher(BoundedPublisher):
    """Publishes a stream of tasks with at most ``window`` unconfirmed messages in flight.

    ``budget``: seconds any one task may take from its first write to its confirm, failovers
    included (default: the app's ``publish_budget``); past it :meth:`publish` raises
    :class:`~app.broker.PublishUnconfirmed` (some were written and may be stored) or
    :class:`~app.broker.PublishRefused` (nothing reached a broker that kept it). One publisher
    per thread: it owns its connection.
    """

    def __init__(self, celery: Any, *, window: int = DEFAULT_WINDOW,
                 budget: float | None = None, pause: float = 0.1) -> None:
        super().__init__(celery, budget=budget, pause=pause)
        self.window = check_window(window)

    def publish(
        self,
        calls: Iterable[TaskCall],
        *,
        on_confirmed: Callable[[int], None] | None = None,
        pace: Callable[[int], float] | None = None,
        stop: threading.Event | None = None,
    ) -> WindowTrace:
        """Publish every call; return once each is confirmed.

        ``on_confirmed(n)``: called as confirms arrive (``n`` newly confirmed tasks).
        ``pace(k)``: seconds to wait before the first write of the ``k``-th call (<= 0: now).
        ``stop``: when set, return at once (another publisher failed; unconfirmed are left).
        """
        run = _Run(self, iter(calls), on_confirmed, pace, stop)
        try:
            return run.until_done()
        finally:
            run.close()


class _Run:
    """The state of one :meth:`WindowedPublisher.publish`: the connection, the window of
    unconfirmed messages (by delivery tag, in order) and the messages to send again."""

    def __init__(self, publisher: WindowedPublisher, calls: Iterator[TaskCall],
                 on_confirmed: Callable[[int], None] | None,
                 pace: Callable[[int], float] | None, stop: threading.Event | None) -> None:
        self.publisher = publisher
        self.calls = calls
        self.on_confirmed = on_confirmed
        self.pace = pace
        self.stop = stop
        self.trace = WindowTrace()
        self.position = 0
        self.exhausted = False
        self.upcoming: TaskCall | None = None
        self.resend: deque[_Message] = deque()
        self.unconfirmed: dict[int, _Message] = {}
        self.nacked: list[_Message] = []
        self.next_tag = 1
        self.failing_since: float | None = None
        # The transport's own confirm mode waits after every message (py-amqp's
        # basic_publish_confirm); here the channel is put in confirm mode by hand and the
        # confirms are collected as they arrive. Every other transport option (socket
        # timeouts, TCP liveness) stays the app's.
        self.connection = publisher.celery.connection_for_write(
            transport_options={"confirm_publish": False}
        )
        self.retryable = retryable_errors(self.connection)
        self.producer: Any = None
        self.declared: set[str] = set()

    # ------------------------------------------------------------------------------ the loop

    def until_done(self) -> WindowTrace:
        while not (self.stop is not None and self.stop.is_set()):
            try:
                if self.producer is None:
                    self._open()
                wake_at = self._fill()
                if not self.unconfirmed:
                    if self._nothing_left():
                        return self.trace
                    if wake_at is not None:
                        time.sleep(max(0.0, wake_at - time.monotonic()))
                    continue
                self._wait_for_confirms(wake_at)
            except _ConnectionFailed as failure:
                self._fail_over(str(failure))
            except self.retryable as error:
                self._fail_over(f"{type(error).__name__}: {error}")
        return self.trace

    def _nothing_left(self) -> bool:
        if self.resend or self.upcoming is not None:
            return False
        if not self.exhausted:
            self.upcoming = next(self.calls, None)
            self.exhausted = self.upcoming is None
        return self.exhausted

    # ------------------------------------------------------------------------ the connection

    def _open(self) -> None:
        publisher = self.publisher
        self.trace.connections += 1
        deadline = time.monotonic() + publisher.attempt_limit
        with replies_within(self.connection, deadline):
            channel = self.connection.channel()
            channel.confirm_select()
            generation = self.trace.connections
            channel.events["basic_ack"].add(
                lambda tag, multiple: self._settle(generation, tag, multiple, stored=True)
            )
            channel.events["basic_nack"].add(
                lambda tag, multiple: self._settle(generation, tag, multiple, stored=False)
            )
            producer = publisher.celery.amqp.Producer(channel, auto_declare=False)
            for queue in sorted(self.declared):
                producer.maybe_declare(publisher.celery.amqp.queues[queue])
        # Delivery tags count from 1 on every channel.
        self.next_tag = 1
        self.producer = producer

    def _declare(self, queue: str) -> None:
        deadline = time.monotonic() + self.publisher.attempt_limit
        with replies_within(self.connection, deadline):
            self.producer.maybe_declare(self.publisher.celery.amqp.queues[queue])
        self.declared.add(queue)

    def _fail_over(self, reason: str) -> None:
        """Forget the connection; every unconfirmed message goes to the front of the resend
        queue, in order, to be written again on the next node of the failover list."""
        now = time.monotonic()
        host = getattr(self.connection, "host", "?")
        self.trace.errors.append(
            f"{host}: {reason} ({len(self.unconfirmed)} unconfirmed sent again)"
        )
        for message in self.unconfirmed.values():
            message.maybe_stored = True
            self.trace.longest_attempt_seconds = max(
                self.trace.longest_attempt_seconds, now - message.last_sent
            )
        self.resend.extendleft(reversed([*self.unconfirmed.values(), *self.nacked]))
        self.unconfirmed.clear()
        self.nacked.clear()
        self.producer = None
        drop(self.connection)
        if self.failing_since is None:
            self.failing_since = now
        self._check_budget(now)
        time.sleep(self.publisher.pause)

    def close(self) -> None:
        if self.producer is None:
            return  # dropped already: a polite close could wait on a silent node
        with contextlib.suppress(Exception):
            self.connection.release()

    # ---------------------------------------------------------------------------- sending

    def _fill(self) -> float | None:
        """Write until the window is full; the time the next paced call is due, if any."""
        while len(self.unconfirmed) < self.publisher.window:
            if self.resend:
                message = self.resend.popleft()
            else:
                if self.upcoming is None and not self.exhausted:
                    self.upcoming = next(self.calls, None)
                    self.exhausted = self.upcoming is None
                if self.upcoming is None:
                    return None
                if self.pace is not None:
                    wait = self.pace(self.position)
                    if wait > 0:
                        return time.monotonic() + wait
                call = self.upcoming
                # The id is fixed at the first write, so every resend carries the same one.
                if call.task_id is None:
                    call = replace(call, task_id=str(uuid.uuid4()))
                message = _Message(call=call, first_sent=time.monotonic())
                self.upcoming = None
                self.position += 1
            self._write(message)
        return None

    def _write(self, message: _Message) -> None:
        call = message.call
        try:
            if call.queue not in self.declared:
                self._declare(call.queue)
            self.publisher.celery.send_task(
                call.name,
                args=call.args,
                queue=call.queue,
                task_id=call.task_id,
                countdown=call.countdown,
                producer=self.producer,
                retry=False,
                timeout=self.publisher.write_timeout,
            )
        except BaseException:
            # Not in the window yet: it goes back first, so the order is kept.
            self.resend.appendleft(message)
            raise
        if message.sends:
            self.trace.republished += 1
        message.sends += 1
        message.last_sent = time.monotonic()
        self.unconfirmed[self.next_tag] = message
        self.next_tag += 1

    # ------------------------------------------------------------------------------ confirms

    def _wait_for_confirms(self, wake_at: float | None) -> None:
        """Read confirms until one arrives, the next paced call is due, or the oldest
        unconfirmed message is past its confirm deadline (then the node is silent: fail
        over). A silent node cannot hold this wait longer than ``confirm_timeout``."""
        # RabbitMQ confirms in order: while the node works, the oldest message is confirmed
        # first, so its wait is the one to bound.
        oldest = next(iter(self.unconfirmed.values()))
        deadline = oldest.last_sent + self.publisher.confirm_timeout
        until = deadline if wake_at is None else min(deadline, wake_at)
        try:
            self.connection.drain_events(timeout=max(0.001, until - time.monotonic()))
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise _ConnectionFailed(
                    f"no confirm within {self.publisher.confirm_timeout:g} s"
                ) from None
            return
        if self.nacked:
            self.trace.nacked += len(self.nacked)
            self.resend.extend(self.nacked)
            self.nacked.clear()
            self._check_budget(time.monotonic())
            # A broker that refuses (a queue at its length limit) is given a moment before
            # the same messages are offered again.
            time.sleep(self.publisher.pause)

    def _settle(self, generation: int, tag: int, multiple: bool, *, stored: bool) -> None:
        if generation != self.trace.connections:
            return  # a confirm of a channel already given up
        if multiple:
            tags = []
            for pending in self.unconfirmed:
                if pending > tag:
                    break
                tags.append(pending)
        else:
            tags = [tag] if tag in self.unconfirmed else []
        now = time.monotonic()
        confirmed = 0
        for settled in tags:
            message = self.unconfirmed.pop(settled)
            if stored:
                confirmed += 1
                self.trace.longest_confirm_seconds = max(
                    self.trace.longest_confirm_seconds, now - message.first_sent
                )
                self.trace.longest_attempt_seconds = max(
                    self.trace.longest_attempt_seconds, now - message.last_sent
                )
            else:
                self.nacked.append(message)
        if confirmed:
            self.failing_since = None
            self.trace.confirmed += confirmed
            if self.on_confirmed is not None:
                self.on_confirmed(confirmed)

    def _check_budget(self, now: float) -> None:
        waiting = [*self.resend, *self.unconfirmed.values()]
        overdue = [m for m in waiting if now - m.first_sent > self.publisher.budget]
        stalled = self.failing_since is not None and now - self.failing_since > (
            self.publisher.budget
        )
        if not overdue and not stalled:
            return
        maybe_stored = any(m.maybe_stored for m in waiting)
        failure = PublishUnconfirmed if maybe_stored else PublishRefused
        what = (
            "were written but not confirmed" if maybe_stored
            else "were not taken by any broker node"
        )
        last = self.trace.errors[-1] if self.trace.errors else "nacked"
        raise failure(
            f"{len(waiting)} task(s) {what} within {self.publisher.budget:g} s "
            f"({self.trace.confirmed} confirmed before; {self.trace.connections} "
            f"connection(s); last: {last})",
            attempts=self.trace.connections,
            errors=self.trace.errors,
        )


