"""Task throughput end to end: ``.venv/bin/python -m bench.tasks [--items N]``.

Starts a real prefork worker (``--concurrency 2``) on a private vhost of the local RabbitMQ,
with the production settings (quorum queues, confirms, late acks, prefetch 1), and measures
items per second from the first publish until the queue is drained, for the same number of
items sent three ways:

- per item: one ``noop`` task per item;
- batched: one ``noop_batch`` task per ``--chunk-size`` items (the task loops over its list);
- Celery chunks: ``noop.chunks(items, chunk_size)`` (one message per chunk, but Celery calls the
  task once per item inside it).

Numbers, not pass/fail. The vhost and the worker are removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from celery.canvas import chunks

from app.celery_app import HaCelery, make_celery
from app.scheduler import send_many
from app.settings import DEFAULT_QUEUE, AppSettings
from drills.local_services import private_vhost, stop_process_group

REPOSITORY = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def worker(environment: dict[str, str], concurrency: int) -> Iterator[None]:
    log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "--app",
            "app.celery_app",
            "worker",
            "--queues",
            DEFAULT_QUEUE,
            "--concurrency",
            str(concurrency),
            "--hostname",
            "bench@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=REPOSITORY,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while " ready." not in Path(log.name).read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{Path(log.name).read_text()}")
            time.sleep(0.1)
        yield
    finally:
        stop_process_group(process, grace=15)
        log.close()
        os.unlink(log.name)


def drain_time(celery: HaCelery, publish: Callable[[], object]) -> tuple[float, float]:
    """Seconds spent publishing, and from the first publish until no message is ready."""
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        started = time.perf_counter()
        publish()
        published = time.perf_counter() - started
        # One passive declare per 20 ms on one connection: cheap for the broker.
        while channel.queue_declare(DEFAULT_QUEUE, passive=True).message_count:
            time.sleep(0.02)
        return published, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--items", type=int, default=5000, help="items sent one task each")
    parser.add_argument(
        "--batched-items", type=int, default=100_000, help="items sent in batches/chunks"
    )
    parser.add_argument("--chunk-size", type=int, default=100, help="items per batched task")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool processes")
    arguments = parser.parse_args(argv)
    items, chunk = arguments.items, arguments.chunk_size
    batched_items = arguments.batched_items

    with tempfile.TemporaryDirectory() as scratch, private_vhost("bench") as broker_url:
        environment = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3",
            "CELERY_HEARTBEAT_FILE": f"{scratch}/heartbeat",
            "PYTHONPATH": str(REPOSITORY),
        }
        celery = make_celery(AppSettings.from_environ(environment))
        with worker(environment, arguments.concurrency):
            batches = [
                list(range(start, min(batched_items, start + chunk)))
                for start in range(0, batched_items, chunk)
            ]
            variants = {
                "per item (noop)": (
                    items,
                    items,
                    lambda: send_many(
                        celery,
                        items,
                        lambda _i: ("noop", (), DEFAULT_QUEUE),
                        unit="tasks",
                        progress=False,
                    ),
                ),
                f"batched (noop_batch x{chunk})": (
                    batched_items,
                    len(batches),
                    lambda: send_many(
                        celery,
                        len(batches),
                        lambda i: ("noop_batch", (batches[i],), DEFAULT_QUEUE),
                        unit="tasks",
                        progress=False,
                    ),
                ),
                f"celery .chunks({chunk})": (
                    batched_items,
                    len(batches),
                    lambda: chunks(
                        celery.signature("noop"), [(item,) for item in range(batched_items)], chunk
                    ).apply_async(queue=DEFAULT_QUEUE),
                ),
            }
            print(
                f"worker --concurrency {arguments.concurrency}, quorum queue, confirms, late acks, "
                "prefetch 1; publishing with 4 threads"
            )
            header = (
                f"{'variant':<28} {'items':>8} {'messages':>9} {'publish s':>10} {'total s':>8} "
                f"{'items/s':>10} {'ratio':>7}"
            )
            print(header)
            print("-" * len(header))
            baseline = None
            for name, (item_count, messages, publish) in variants.items():
                published, seconds = drain_time(celery, publish)
                rate = item_count / seconds
                baseline = baseline or rate
                print(
                    f"{name:<28} {item_count:>8} {messages:>9} {published:>10.2f} {seconds:>8.2f} "
                    f"{rate:>10,.0f} {rate / baseline:>6.1f}x",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
