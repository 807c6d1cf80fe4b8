"""Throughput through the 3-node cluster: ``.venv/bin/python -m bench.throughput [--items N]``.

Celery's defaults (classic queue, early ack, prefetch 4, no publisher confirms) against the
platform's settings (``app.settings``: quorum queue, confirms, late acks, reject on worker loss),
in the same run, on a fresh local 3-node RabbitMQ cluster (``drills.rabbitmq_cluster``), with
one prefork worker (``--concurrency 2``) started with the Deployment's flags
(``infra.celery.worker_command``), per item (one ``noop`` task per item) and chunked (one
``noop_batch`` task per 100 items).

Two numbers per variant:

- worker throughput: items/s the worker drains from a queue filled beforehand (from the first
  message taken until the queue is empty), so publishing does not limit it;
- publishing: tasks/s the app's publisher (``app.scheduler.send_many``, 4 threads) gets
  confirmed (Celery's defaults do not wait for confirms at all), and the same with a window of
  unconfirmed messages per connection (``publish_with_confirm_window``): every message is still
  confirmed before it counts, and one that is not is sent again.

Numbers, not pass/fail; goals are printed next to them. The cluster and the workers are
removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from drills.local_services import stop_process_group

REPOSITORY = Path(__file__).resolve().parents[1]
BASELINE_BROKER_ENV = "BENCH_BASELINE_BROKER_URL"
BASELINE_QUEUE = "celery"
"""Celery's default queue: classic, on a direct exchange of the same name."""
CHUNK = 100
PER_ITEM_GOAL = 0.5
"""The platform's per-item worker throughput against Celery's defaults."""
CHUNKED_GOAL = 100_000
"""Items per second, chunked, through the quorum queue."""


# ---------------------------------------------------------------- Celery's defaults, as an app


def _baseline_app() -> Celery:
    """Celery with nothing configured but the broker: what a new project starts with."""
    baseline = Celery("bench_baseline", broker=os.environ[BASELINE_BROKER_ENV])
    # Celery's default queue, made explicitly classic: the platform's vhost makes queues quorum
    # by default (its definitions), and a classic queue is what Celery's defaults assume.
    baseline.conf.task_queues = [
        Queue(
            BASELINE_QUEUE,
            Exchange(BASELINE_QUEUE, type="direct"),
            routing_key=BASELINE_QUEUE,
            queue_arguments={"x-queue-type": "classic"},
        )
    ]

    @baseline.task(name="noop")
    def noop(*_args: Any) -> None:
        """Same as app.tasks.noop."""

    @baseline.task(name="noop_batch")
    def noop_batch(items: list[Any]) -> int:
        """Same as app.tasks.noop_batch."""
        return len(items)

    return baseline


def __getattr__(name: str) -> Any:
    # `celery --app bench.throughput:baseline worker` builds the app only in the worker process.
    if name == "baseline":
        return _baseline_app()
    raise AttributeError(name)


# ------------------------------------------------------------------------------- publishing


def publish_with_confirm_window(
    celery: Celery,
    calls: list[tuple[str, tuple[Any, ...], str]],
    *,
    publishers: int = 4,
    window: int = 200,
) -> float:
    """Publish ``calls`` with publisher confirms, up to ``window`` unconfirmed per connection.

    The same guarantee as waiting for each confirm: a message counts as sent only once the
    broker confirmed it; a nack (or a connection lost before the confirm) sends the message
    again. Returns the elapsed seconds.
    """
    started = time.perf_counter()
    errors: list[BaseException] = []

    def publish_share(offset: int) -> None:
        try:
            _publish_share(celery, calls[offset::publishers], window)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=publish_share, args=(i,)) for i in range(publishers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def _publish_share(celery: Celery, calls: list[tuple[str, tuple[Any, ...], str]], window: int):
    # The transport's own confirm mode waits after every message; here the channel is put in
    # confirm mode by hand and confirms are collected as they arrive.
    with celery.connection_for_write(transport_options={"confirm_publish": False}) as connection:
        channel = connection.default_channel
        channel.confirm_select()
        pending: dict[int, int] = {}
        nacked: list[int] = []
        next_tag = 1

        def settle(delivery_tag: int, multiple: bool, *, ok: bool) -> None:
            tags = [t for t in pending if t <= delivery_tag] if multiple else [delivery_tag]
            for tag in tags:
                index = pending.pop(tag, None)
                if index is not None and not ok:
                    nacked.append(index)

        channel.events["basic_ack"].add(lambda tag, multiple: settle(tag, multiple, ok=True))
        channel.events["basic_nack"].add(lambda tag, multiple: settle(tag, multiple, ok=False))
        producer = celery.amqp.Producer(channel)
        queue = list(range(len(calls)))
        while queue or pending:
            while queue and len(pending) < window:
                index = queue.pop()
                name, args, routing = calls[index]
                celery.send_task(name, args=args, queue=routing, producer=producer)
                pending[next_tag] = index
                next_tag += 1
            connection.drain_events(timeout=30)
            queue.extend(nacked)
            nacked.clear()


# ----------------------------------------------------------------------------- processes


@contextlib.contextmanager
def worker(app_path: str, queue: str, environment: dict[str, str], prefetch: int | None):
    from infra.celery import AppRuntimeArgs, SecretKeyRef, WorkerPoolArgs, worker_command

    runtime = AppRuntimeArgs(
        namespace="bench",
        image="bench.invalid/ha-celery:local",
        broker_url=SecretKeyRef(name="rabbitmq-broker", key="url"),
    )
    command = worker_command(WorkerPoolArgs(runtime=runtime, queue=queue, concurrency=2))
    command[0] = str(Path(sys.executable).parent / "celery")
    command[command.index("--app") + 1] = app_path
    command[command.index("--hostname") + 1] = f"bench-{time.time_ns()}@localhost"
    # Per-task INFO lines ("received", "succeeded") cost both variants alike; they are off here
    # so the numbers show the broker and settings, not logging.
    command[command.index("--loglevel") + 1] = "WARNING"
    if prefetch is not None:
        command += ["--prefetch-multiplier", str(prefetch)]
    log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process, Path(log.name)
    finally:
        stop_process_group(process, grace=15)
        log.close()
        os.unlink(log.name)


def queue_depth(celery: Celery, queue: str) -> int:
    with celery.connection_for_write(transport_options={"confirm_publish": False}) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def drain_rate(
    celery: Celery, queue: str, items: int, messages: int, start_worker: Callable[[], Any]
) -> float:
    """Items/s from the first message the worker takes until the queue is empty."""
    with start_worker() as (process, log_path):
        began = None
        taken_at_start = 0
        deadline = time.monotonic() + 180
        with celery.connection_for_write(
            transport_options={"confirm_publish": False}
        ) as connection:
            channel = connection.default_channel
            while True:
                depth = channel.queue_declare(queue, passive=True).message_count
                now = time.perf_counter()
                if began is None and depth < messages:
                    began, taken_at_start = now, messages - depth
                if depth == 0 and began is not None:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker stopped or stalled:\n{log_path.read_text()}")
                time.sleep(0.02)
    seconds = max(now - began, 1e-6)
    # The messages taken before the first observation are not timed; leave them out.
    return items * (messages - taken_at_start) / messages / seconds


# ------------------------------------------------------------------------------------ run


@dataclass(frozen=True)
class Variant:
    name: str
    platform: bool
    chunked: bool
    prefetch: int | None = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--items", type=int, default=20_000, help="items per per-item variant")
    parser.add_argument(
        "--chunked-items", type=int, default=300_000, help="items per chunked variant"
    )
    parser.add_argument(
        "--prefetch", type=int, default=16, help="prefetch multiplier of the tuned variant"
    )
    arguments = parser.parse_args(argv)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the cluster and the worker are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if arguments.items < 1000 or arguments.chunked_items < 10 * CHUNK:
        parser.error("--items must be >= 1000 and --chunked-items >= 1000")

    from drills.rabbitmq_cluster import LocalRabbitMQCluster

    with tempfile.TemporaryDirectory() as scratch, LocalRabbitMQCluster(size=3) as cluster:
        broker_url = cluster.broker_url()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_"))},
            "CELERY_BROKER_URL": broker_url,
            BASELINE_BROKER_ENV: broker_url,
            "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3",
            "CELERY_HEARTBEAT_FILE": f"{scratch}/heartbeat",
            "PYTHONPATH": str(REPOSITORY),
        }
        os.environ[BASELINE_BROKER_ENV] = broker_url
        from app.celery_app import make_celery
        from app.scheduler import send_many
        from app.settings import DEFAULT_QUEUE, AppSettings

        platform = make_celery(AppSettings.from_environ(environment))
        baseline = _baseline_app()
        # Declare each app's queues before anything is published to them.
        for app in (platform, baseline):
            with app.connection_for_write() as connection:
                channel = connection.default_channel
                for queue in app.amqp.queues.values():
                    queue.bind(channel).declare()
        print(
            f"RabbitMQ {cluster.version}, 3 local nodes; one worker --concurrency 2 (prefork); "
            f"{arguments.items:,} items per item, {arguments.chunked_items:,} items chunked "
            f"by {CHUNK}"
        )
        variants = [
            Variant("Celery defaults, per item", platform=False, chunked=False),
            Variant("platform, per item, prefetch 1", platform=True, chunked=False),
            Variant(
                f"platform, per item, prefetch {arguments.prefetch}",
                platform=True,
                chunked=False,
                prefetch=arguments.prefetch,
            ),
            Variant("Celery defaults, chunked", platform=False, chunked=True),
            Variant("platform, chunked, prefetch 1", platform=True, chunked=True),
            Variant(
                f"platform, chunked, prefetch {arguments.prefetch}",
                platform=True,
                chunked=True,
                prefetch=arguments.prefetch,
            ),
        ]
        header = (
            f"{'variant':<34} {'publish tasks/s':>16} {'windowed':>10} "
            f"{'worker items/s':>15} {'vs defaults':>12}"
        )
        print(header)
        print("-" * len(header))
        baselines: dict[bool, float] = {}
        results: dict[str, float] = {}
        for variant in variants:
            app = platform if variant.platform else baseline
            queue = DEFAULT_QUEUE if variant.platform else BASELINE_QUEUE
            items = arguments.chunked_items if variant.chunked else arguments.items
            if variant.chunked:
                batches = [list(range(i, min(items, i + CHUNK))) for i in range(0, items, CHUNK)]
                calls = [("noop_batch", (batch,), queue) for batch in batches]
            else:
                calls = [("noop", (), queue)] * items
            half = len(calls) // 2
            publish_seconds = send_many(
                app, half, lambda i, calls=calls: calls[i], unit="tasks", progress=False
            )
            window_seconds = publish_with_confirm_window(app, calls[half:])
            app_path = "app.celery_app" if variant.platform else "bench.throughput:baseline"
            rate = drain_rate(
                app,
                queue,
                items,
                len(calls),
                lambda app_path=app_path, queue=queue, prefetch=variant.prefetch: worker(
                    app_path, queue, environment, prefetch
                ),
            )
            baselines.setdefault(variant.chunked, rate)
            results[variant.name] = rate
            ratio = rate / baselines[variant.chunked]
            print(
                f"{variant.name:<34} {half / publish_seconds:>16,.0f} "
                f"{(len(calls) - half) / window_seconds:>10,.0f} {rate:>15,.0f} {ratio:>11.2f}x",
                flush=True,
            )
        per_item_default = results["Celery defaults, per item"]
        best_per_item = max(v for k, v in results.items() if k.startswith("platform, per item"))
        best_chunked = max(v for k, v in results.items() if k.startswith("platform, chunked"))
        print()
        print(
            f"goal: platform per item >= {PER_ITEM_GOAL:.1f}x Celery defaults: "
            f"{best_per_item / per_item_default:.2f}x "
            f"({'met' if best_per_item >= PER_ITEM_GOAL * per_item_default else 'NOT met'})"
        )
        print(
            f"goal: chunked >= {CHUNKED_GOAL:,} items/s on the quorum queue: {best_chunked:,.0f} "
            f"({'met' if best_chunked >= CHUNKED_GOAL else 'NOT met'})"
        )
        print(
            "publish tasks/s: the app's publisher (4 threads; confirmed per message on the "
            "platform, unconfirmed with Celery's defaults); windowed: confirms collected in "
            "windows of 200 per connection"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
