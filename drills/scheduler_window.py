"""Drill: the scheduler publishes with a window of unconfirmed messages while its node is killed.

``python -m drills.scheduler_window [--tasks 10000] [--rate 1000] [--kill-after 4]`` starts a
local 3-node RabbitMQ cluster from the deployed config (``drills.rabbitmq_cluster``), runs the
scheduler's publishing (``app.scheduler.send_many``, the code behind ``python -m
app.scheduler``) with ``--window`` unconfirmed messages per publisher, SIGKILLs the node every
publisher is connected to (the first of the failover list) ``--kill-after`` seconds in, and then
reads every message back from the quorum queue through the surviving nodes. Each task carries a
unique key, and the publisher picks its task ids, so the report can say: tasks lost (keys that
never arrived: must be 0), duplicates (keys that arrived more than once, each with the same task
id: the unconfirmed window sent again after the kill), and how long the run took.

Owns the drill and :func:`read_back` (every message of a queue as ``(key, task id)``), which the
app's window tests use too. Does not own the publisher (``app.publish_window``) or the cluster
(``drills.rabbitmq_cluster``). ``tests/drills/test_scheduler_window.py`` runs it with a short
fault window.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from kombu import Connection, Queue

from app.broker import BrokerBounds, TaskCall
from app.publish_window import DEFAULT_WINDOW
from app.settings import DEFAULT_QUEUE, AppSettings


def read_back(url: str, queue: str, *, expect_at_least: int,
              stop: threading.Event | None = None, timeout: float = 60.0) -> list[tuple[str, str]]:
    """``(key, task id)`` of every message in ``queue`` (a ``record`` task's first argument is
    its key), consumed until the queue stays empty for a second after at least
    ``expect_at_least`` arrived (or ``stop`` is set). ``url`` may be a ``;`` failover list."""
    seen: list[tuple[str, str]] = []

    def on_message(_body: object, message) -> None:  # type: ignore[no-untyped-def]
        args = json.loads(message.body)[0]
        seen.append((args[0], message.headers["id"]))

    deadline = time.monotonic() + timeout
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 500, False)
        consumer = connection.Consumer(Queue(queue, no_declare=True), channel=channel,
                                       callbacks=[on_message], no_ack=True)
        with consumer:
            idle_since = time.monotonic()
            while time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=0.2)
                    idle_since = time.monotonic()
                except TimeoutError:
                    enough = len(seen) >= expect_at_least or (stop is not None and stop.is_set())
                    if enough and time.monotonic() - idle_since > 1.0:
                        return seen
    raise TimeoutError(f"read {len(seen)} messages of at least {expect_at_least} in {timeout} s")


@dataclass(frozen=True)
class Arrivals:
    """What came out of the queue, by key."""

    lost: tuple[str, ...]
    duplicates: int
    """Messages beyond one per key."""
    keys_with_several_ids: tuple[str, ...]
    """Keys that arrived under more than one task id (a resend must keep its id)."""


def arrivals(received: list[tuple[str, str]], keys: list[str]) -> Arrivals:
    counts = Counter(key for key, _ in received)
    ids: defaultdict[str, set[str]] = defaultdict(set)
    for key, task_id in received:
        ids[key].add(task_id)
    return Arrivals(
        lost=tuple(key for key in keys if key not in counts),
        duplicates=len(received) - len(counts),
        keys_with_several_ids=tuple(sorted(key for key, task_ids in ids.items()
                                           if len(task_ids) > 1)),
    )


@dataclass(frozen=True)
class WindowDrillResult:
    tasks: int
    window: int
    killed_node: str
    seconds: float
    arrivals: Arrivals
    republished: int
    failovers: int
    longest_confirm_seconds: float

    def table(self) -> str:
        rows = [
            ("tasks published (each confirmed)", f"{self.tasks:,}"),
            ("window per publisher", str(self.window)),
            ("node killed (SIGKILL)", self.killed_node),
            ("publishing took", f"{self.seconds:.1f} s ({self.tasks / self.seconds:,.0f} tasks/s)"),
            ("failovers", str(self.failovers)),
            ("messages sent again", str(self.republished)),
            ("longest first write -> confirm", f"{self.longest_confirm_seconds:.2f} s"),
            ("lost (keys never in the queue)", str(len(self.arrivals.lost))),
            ("duplicates (same task id)", str(self.arrivals.duplicates)),
            ("keys under several task ids", str(len(self.arrivals.keys_with_several_ids))),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"| {name:<{width}} | {value} |" for name, value in rows)


def run(cluster, *, tasks: int, rate: float, kill_after: float,  # type: ignore[no-untyped-def]
        window: int = DEFAULT_WINDOW, publishers: int = 2) -> WindowDrillResult:
    """Publish ``tasks`` at ``rate`` with ``window``; kill the publishers' node after
    ``kill_after`` seconds; read everything back through the survivors."""
    from app.celery_app import make_celery
    from app.scheduler import PublishStats, send_many

    # The platform's bounds, except a shorter connect timeout: the killed node refuses
    # connections at once anyway, and the drill should not wait on its own set-up.
    settings = AppSettings(broker_urls=tuple(cluster.amqp_urls()),
                           broker_bounds=BrokerBounds(connect_timeout=1.0))
    celery = make_celery(settings)
    victim = cluster.nodes[0].name
    keys = [f"window-drill-{index:06d}" for index in range(tasks)]
    stats = PublishStats()
    outcome: dict[str, object] = {}

    def publish() -> None:
        try:
            outcome["seconds"] = send_many(
                celery, tasks,
                lambda i: TaskCall(name="record", args=(keys[i], 0.0), queue=DEFAULT_QUEUE),
                unit="tasks", progress=False, publishers=publishers, rate=rate,
                retry_seconds=60.0, stats=stats, window=window,
            )
        except BaseException as error:
            outcome["error"] = error

    publisher = threading.Thread(target=publish, name="window-drill-publisher")
    publisher.start()
    time.sleep(kill_after)
    if not publisher.is_alive():
        raise RuntimeError(f"publishing ended before the kill at {kill_after} s: raise --tasks")
    cluster.kill(victim)
    publisher.join(timeout=tasks / rate + 120)
    if "error" in outcome:
        raise RuntimeError(f"publishing failed: {outcome['error']}") from outcome["error"]
    survivors = ";".join(cluster.amqp_url(node.name) for node in cluster.nodes[1:])
    received = read_back(survivors, DEFAULT_QUEUE, expect_at_least=tasks)
    return WindowDrillResult(
        tasks=tasks, window=window, killed_node=cluster.short_name(victim),
        seconds=float(outcome["seconds"]), arrivals=arrivals(received, keys),
        republished=stats.republished, failovers=stats.retries,
        longest_confirm_seconds=stats.longest_publish_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills.scheduler_window",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks to publish")
    parser.add_argument("--rate", type=float, default=1000.0, help="tasks per second")
    parser.add_argument("--kill-after", type=float, default=4.0,
                        help="seconds into publishing when the node is killed")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="unconfirmed messages per publisher")
    arguments = parser.parse_args(argv)
    if arguments.tasks < 100 or arguments.rate <= 0 or arguments.kill_after <= 0:
        parser.error("--tasks must be >= 100, --rate and --kill-after > 0")
    if arguments.kill_after >= arguments.tasks / arguments.rate:
        parser.error("--kill-after must fall inside the run (< tasks / rate)")
    from drills.rabbitmq_cluster import LocalRabbitMQCluster

    with LocalRabbitMQCluster(size=3) as cluster:
        print(f"RabbitMQ {cluster.version}, 3 local nodes, quorum queue", flush=True)
        result = run(cluster, tasks=arguments.tasks, rate=arguments.rate,
                     kill_after=arguments.kill_after, window=arguments.window)
    print(result.table())
    return 0 if not result.arrivals.lost and not result.arrivals.keys_with_several_ids else 1


if __name__ == "__main__":
    sys.exit(main())
