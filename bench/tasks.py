"""Task throughput end to end: ``.venv/bin/python -m bench.tasks [--items N] [--runs N]``.

Starts a real prefork worker (``--concurrency 2``) on a private vhost of the local RabbitMQ,
with the production settings (quorum queues, confirms, late acks, prefetch 1), and measures
items per second from the first publish until the worker has taken the last message, for the
same work sent three ways:

- per item: one ``noop`` task per item;
- batched: one ``noop_batch`` task per ``--chunk-size`` items (the task loops over its list);
- Celery chunks: ``noop.chunks(items, chunk_size)`` (one ``celery.starmap`` message per chunk;
  Celery calls the task once per item inside it).

Every signature is bound to the benchmark's own app (``app=celery``): an unbound canvas
(``chunks``, ``group``, ``chord``) publishes through Celery's *default* app, to the default
broker's vhost ``/``, where this worker never sees it. The end of a run is therefore not "the
queue is empty" but "the worker reports it accepted every message of the run" (remote control
``stats``) with nothing still active; a run whose messages went elsewhere fails instead of
reporting a number.

Each variant runs ``--runs`` times; the table gives the median items/s, the spread (min-max)
and the ratio of medians against per-item, measured in the same run. Numbers, not pass/fail.
Progress goes to stderr, the table to stdout. The vhost and the worker are removed at the end,
even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import celery as celery_package
from celery.canvas import chunks
from celery.utils.nodenames import host_format

from app.celery_app import HaCelery, make_celery
from app.scheduler import send_many
from app.settings import DEFAULT_QUEUE, AppSettings
from drills.local_services import private_vhost, stop_process_group

REPOSITORY = Path(__file__).resolve().parents[1]
WORKER_HOSTNAME = "bench@%h"
DRAIN_TIMEOUT_SECONDS = 120.0
"""After the queue is empty, the worker holds at most ``concurrency`` prefetched messages."""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Variant:
    """One way of sending the same work."""

    name: str
    items: int
    messages: int
    task_name: str
    """The task each message runs on the worker (how the worker counts it)."""
    publish: Callable[[], object]


def variants(celery: HaCelery, *, items: int, batched_items: int,
             chunk_size: int) -> list[Variant]:
    """The three variants, every one publishing through ``celery`` (never the default app)."""
    batches = [list(range(start, min(batched_items, start + chunk_size)))
               for start in range(0, batched_items, chunk_size)]

    def per_item() -> object:
        return send_many(celery, items, lambda _i: ("noop", (), DEFAULT_QUEUE), unit="tasks",
                         progress=False)

    def batched() -> object:
        return send_many(celery, len(batches),
                         lambda i: ("noop_batch", (batches[i],), DEFAULT_QUEUE), unit="tasks",
                         progress=False)

    def celery_chunks() -> object:
        # app=celery: without it chunks (and the group it becomes) publish through the default
        # app, to another broker vhost.
        return chunks(celery.signature("noop"), [(item,) for item in range(batched_items)],
                      chunk_size, app=celery).apply_async(queue=DEFAULT_QUEUE)

    return [
        Variant("per item (noop)", items, items, "noop", per_item),
        Variant(f"batched (noop_batch x{chunk_size})", batched_items, len(batches),
                "noop_batch", batched),
        Variant(f"celery .chunks({chunk_size})", batched_items, len(batches), "celery.starmap",
                celery_chunks),
    ]


@contextlib.contextmanager
def worker(environment: dict[str, str], concurrency: int) -> Iterator[str]:
    """A worker on the default queue; yields its node name."""
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
            WORKER_HOSTNAME,
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
        yield host_format(WORKER_HOSTNAME)
    finally:
        stop_process_group(process, grace=15)
        log.close()
        os.unlink(log.name)


def accepted(celery: HaCelery, node: str) -> tuple[dict[str, int], int]:
    """(tasks the worker has accepted since it started, by name; tasks running now)."""
    inspect = celery.control.inspect(destination=[node], timeout=2.0, limit=1)
    totals = (inspect.stats() or {}).get(node, {}).get("total", {})
    active = (inspect.active() or {}).get(node)
    return dict(totals), len(active) if active is not None else -1


def drain_time(celery: HaCelery, node: str, variant: Variant) -> tuple[float, float]:
    """Seconds spent publishing, and from the first publish until the worker has accepted every
    message of ``variant`` and runs none of them any more."""
    before, _ = accepted(celery, node)
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        started = time.perf_counter()
        variant.publish()
        published = time.perf_counter() - started
        # Cheap while the bulk drains: one passive declare per 20 ms on one connection.
        while channel.queue_declare(DEFAULT_QUEUE, passive=True).message_count:
            time.sleep(0.02)
    # Then the worker's own count: it proves the messages came to this worker's queue.
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while True:
        totals, running = accepted(celery, node)
        taken = totals.get(variant.task_name, 0) - before.get(variant.task_name, 0)
        if taken >= variant.messages and running == 0:
            return published, time.perf_counter() - started
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{variant.name}: the worker took {taken} of {variant.messages} "
                f"'{variant.task_name}' messages within {DRAIN_TIMEOUT_SECONDS:.0f} s after its "
                "queue was empty; were they published through another app (another vhost)?")
        time.sleep(0.02)


@dataclass(frozen=True)
class Result:
    variant: Variant
    rates: tuple[float, ...]
    publish_seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def measure(celery: HaCelery, node: str, chosen: Sequence[Variant], runs: int) -> list[Result]:
    """Each variant ``runs`` times, interleaved so a slow phase of the machine hits all alike."""
    rates: dict[str, list[float]] = {v.name: [] for v in chosen}
    publishing: dict[str, list[float]] = {v.name: [] for v in chosen}
    for run in range(1, runs + 1):
        for variant in chosen:
            published, seconds = drain_time(celery, node, variant)
            rates[variant.name].append(variant.items / seconds)
            publishing[variant.name].append(published)
            progress(f"run {run}/{runs} {variant.name}: {variant.items / seconds:,.0f} items/s")
    return [Result(v, tuple(rates[v.name]), tuple(publishing[v.name])) for v in chosen]


def table(results: Sequence[Result]) -> str:
    header = (f"{'variant':<28} {'items':>8} {'messages':>9} {'publish s':>10} "
              f"{'items/s median':>15} {'min-max':>17} {'ratio':>7}")
    lines = [header, "-" * len(header)]
    baseline = results[0].median
    for result in results:
        variant = result.variant
        spread = f"{min(result.rates):,.0f}-{max(result.rates):,.0f}"
        lines.append(
            f"{variant.name:<28} {variant.items:>8,} {variant.messages:>9,} "
            f"{statistics.median(result.publish_seconds):>10.2f} {result.median:>15,.0f} "
            f"{spread:>17} {result.median / baseline:>6.1f}x")
    return "\n".join(lines)


def _positive(raw: str) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive: give 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--items", type=_positive, default=5000,
                        help="items sent one task each (default: 5000)")
    parser.add_argument("--batched-items", type=_positive, default=100_000,
                        help="items sent in batches/chunks (default: 100000)")
    parser.add_argument("--chunk-size", type=_positive, default=100,
                        help="items per batched task (default: 100)")
    parser.add_argument("--concurrency", type=_positive, default=2,
                        help="worker pool processes (default: 2)")
    parser.add_argument("--runs", type=_positive, default=3,
                        help="runs of each variant, for the median and spread (default: 3)")
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch, private_vhost("bench") as broker_url:
        environment = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3",
            "CELERY_HEARTBEAT_FILE": f"{scratch}/heartbeat",
            "PYTHONPATH": str(REPOSITORY),
        }
        celery = make_celery(AppSettings.from_environ(environment))
        chosen = variants(celery, items=arguments.items, batched_items=arguments.batched_items,
                          chunk_size=arguments.chunk_size)
        with worker(environment, arguments.concurrency) as node:
            progress(f"worker {node} ready on a private vhost")
            results = measure(celery, node, chosen, arguments.runs)
    print(f"$ python -m bench.tasks {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"Celery {celery_package.__version__}; worker --concurrency {arguments.concurrency}, "
          f"quorum queue, confirms, late acks, prefetch 1; publishing with 4 threads; "
          f"{arguments.runs} run(s) each, on {os.cpu_count()} cores")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
