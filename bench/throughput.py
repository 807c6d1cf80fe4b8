"""Worker throughput through the 3-node cluster: ``.venv/bin/python -m bench.throughput``.

Celery's real defaults against the platform's settings, on a fresh local 3-node RabbitMQ cluster
(``drills.rabbitmq_cluster``), in the same run, interleaved and repeated (``--repeats``, default
3; the order of the variants rotates from one repeat to the next), reported as median and
min-max:

- **Celery defaults**: ``celery --app bench.throughput:baseline worker --concurrency 2`` and
  nothing else: a Celery app with only a broker URL, so every setting is the library's default
  (read from ``celery.app.defaults`` and printed: prefetch multiplier 4, early ack, a classic
  queue, no publisher confirms, log level WARNING);
- **the platform**: the app's own Celery object (``app.celery_app``: quorum queue, confirms,
  late acks, reject on worker loss, its bootsteps) started with the Deployment's command line
  (``infra.celery.worker_command``) at prefetch 1 (the long-task pools) and at ``--prefetch``
  (default 16, the short-task pools), log level WARNING like the baseline.

Both run the same two task bodies, registered on each app under the same names: ``bench.noop``
(one item per message) and ``bench.noop_batch`` (``--chunk`` items per message). Each completion
appends one fixed-size record (time, items) to a file, which costs both sides alike (a few
microseconds against a per-task cost of a millisecond) and makes the end exact: a variant ends
when every message has completed, so nothing is ready or unacknowledged any more (the queue is
then checked empty). Prefetched messages cannot end the clock early, as a "ready count reached
0" check would. The rate runs from the first completion to the last, so worker start-up is not
in it; the queue is filled (with confirms) before the worker starts.

Also printed per variant: broker CPU per message (all three nodes' ``beam.smp``, from /proc,
over the same window) and worker CPU per message (main and pool processes): where the time goes.

Numbers, not pass/fail; goals are printed next to them. The cluster and the workers are
removed at the end, even on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from drills.local_services import stop_process_group

REPOSITORY = Path(__file__).resolve().parents[1]
BASELINE_BROKER_ENV = "BENCH_BASELINE_BROKER_URL"
COMPLETIONS_ENV = "BENCH_COMPLETIONS_FILE"
BASELINE_QUEUE = "celery"
"""Celery's default queue name (``task_default_queue``)."""
CONCURRENCY = 2
"""The same on both sides; Celery's own default is the number of CPUs."""
PER_ITEM_GOAL = 0.5
"""The platform's per-item worker throughput against Celery's defaults."""
CHUNKED_GOAL = 100_000
"""Items per second, chunked, through the quorum queue."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------- the task bodies, on both apps

_RECORD = struct.Struct("<dI")
"""One completion: wall-clock time, items done."""
_completion_fd: int | None = None


def _record_completion(items: int) -> None:
    # One O_APPEND write of 12 bytes per task is atomic, so every pool process can share the
    # file; the descriptor is opened lazily, after the pool forked.
    global _completion_fd
    if _completion_fd is None:
        _completion_fd = os.open(
            os.environ[COMPLETIONS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
        )
    os.write(_completion_fd, _RECORD.pack(time.time(), items))


def noop(*_args: Any) -> None:
    """One item of no work."""
    _record_completion(1)


def noop_batch(items: list[Any]) -> int:
    """A list of items of no work in one message."""
    if not isinstance(items, list | tuple):
        raise ValueError(f"bench.noop_batch: items must be a list, got {type(items).__name__}")
    _record_completion(len(items))
    return len(items)


def _register(app: Celery) -> Celery:
    app.task(name="bench.noop")(noop)
    app.task(name="bench.noop_batch")(noop_batch)
    return app


def read_completions(path: Path) -> list[tuple[float, int]]:
    data = path.read_bytes()
    usable = len(data) - len(data) % _RECORD.size
    return sorted(_RECORD.iter_unpack(data[:usable]))


# ------------------------------------------------------------------------------- the two apps


def baseline_app(broker_url: str | None = None) -> Celery:
    """Celery with nothing configured but the broker: what a new project starts with."""
    baseline = Celery("bench_baseline", broker=broker_url or os.environ[BASELINE_BROKER_ENV])
    # Celery's default queue, declared as Celery declares it, with the queue type made
    # explicit: the platform's vhost defaults to quorum queues (its definitions), and
    # Celery's default (``task_default_queue_type``) is classic.
    baseline.conf.task_queues = [
        Queue(
            BASELINE_QUEUE,
            Exchange(BASELINE_QUEUE, type="direct"),
            routing_key=BASELINE_QUEUE,
            queue_arguments={"x-queue-type": "classic"},
        )
    ]
    return _register(baseline)


_APPS: dict[str, Celery] = {}


def __getattr__(name: str) -> Any:
    # `celery --app bench.throughput:baseline|platform worker` builds the app in the worker.
    if name == "baseline":
        return _APPS.setdefault(name, baseline_app())
    if name == "platform":
        if name not in _APPS:
            from app.celery_app import celery

            _APPS[name] = _register(celery)
        return _APPS[name]
    raise AttributeError(name)


def platform_app(environment: dict[str, str]) -> Celery:
    """The platform's app for ``environment`` with the bench tasks (for the publishing side;
    the worker builds its own from the environment it is started with)."""
    from app.celery_app import make_celery
    from app.settings import AppSettings

    return _register(make_celery(AppSettings.from_environ(environment)))


def celery_defaults() -> dict[str, Any]:
    """The library's defaults for what the baseline leaves alone (read, not assumed)."""
    from celery.app.defaults import DEFAULTS

    return {
        "worker_prefetch_multiplier": DEFAULTS["worker_prefetch_multiplier"],
        "task_acks_late": DEFAULTS["task_acks_late"],
        "task_default_queue_type": DEFAULTS.get("task_default_queue_type", "classic"),
        "confirm_publish": dict(DEFAULTS["broker_transport_options"] or {}).get(
            "confirm_publish", False
        ),
        "worker_concurrency": DEFAULTS["worker_concurrency"] or os.cpu_count(),
    }


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


@dataclass(frozen=True)
class Variant:
    name: str
    platform: bool
    chunked: bool
    prefetch: int = 1
    """The platform's ``--prefetch-multiplier``; the baseline keeps Celery's default."""

    @property
    def queue(self) -> str:
        from app.settings import DEFAULT_QUEUE

        return DEFAULT_QUEUE if self.platform else BASELINE_QUEUE


def worker_command(variant: Variant) -> list[str]:
    celery_bin = str(Path(sys.executable).parent / "celery")
    if not variant.platform:
        # Nothing of ours: Celery's defaults, at the same concurrency as the platform.
        return [
            celery_bin,
            "--app",
            "bench.throughput:baseline",
            "worker",
            "--concurrency",
            str(CONCURRENCY),
        ]
    from infra.celery import AppRuntimeArgs, SecretKeyRef, WorkerPoolArgs
    from infra.celery import worker_command as deployment_command

    runtime = AppRuntimeArgs(
        namespace="bench",
        image="bench.invalid/ha-celery:local",
        broker_url=SecretKeyRef(name="rabbitmq-broker", key="url"),
    )
    command = deployment_command(
        WorkerPoolArgs(
            runtime=runtime,
            queue=variant.queue,
            concurrency=CONCURRENCY,
            prefetch_multiplier=variant.prefetch,
        )
    )
    command[0] = celery_bin
    command[command.index("--app") + 1] = "bench.throughput:platform"
    command[command.index("--hostname") + 1] = f"bench-{time.time_ns()}@localhost"
    # Celery's default log level, as on the baseline: per-task INFO lines would cost both.
    command[command.index("--loglevel") + 1] = "WARNING"
    return command


@contextlib.contextmanager
def worker(command: list[str], environment: dict[str, str]) -> Iterator[subprocess.Popen]:
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
        yield process
    except BaseException:
        print(Path(log.name).read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        stop_process_group(process, grace=15)
        log.close()
        os.unlink(log.name)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (and their live threads) so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a prefork worker's main and pool processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(FileNotFoundError):
        return [pid, *(int(child) for child in children.read_text().split())]
    return [pid]


@dataclass(frozen=True)
class Drain:
    items_per_second: float
    broker_cpu_ms_per_message: float
    worker_cpu_ms_per_message: float


def drain(
    app: Celery,
    variant: Variant,
    messages: int,
    items: int,
    completions: Path,
    environment: dict[str, str],
    broker_pids: list[int],
    timeout: float,
) -> Drain:
    """Start a worker on a full queue; measure from its first completion to its last."""
    completions.write_bytes(b"")
    with worker(worker_command(variant), environment) as process:
        deadline = time.monotonic() + timeout
        window_start: tuple[int, float, float] | None = None
        while True:
            done = completions.stat().st_size // _RECORD.size
            if window_start is None and done:
                window_start = (
                    done,
                    cpu_seconds(broker_pids),
                    cpu_seconds(process_tree(process.pid)),
                )
            if done >= messages:
                broker_cpu = cpu_seconds(broker_pids)
                worker_cpu = cpu_seconds(process_tree(process.pid))
                break
            if process.poll() is not None:
                raise RuntimeError(f"{variant.name}: the worker exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant.name}: {done} of {messages} done after {timeout} s")
            time.sleep(0.02)
    records = read_completions(completions)
    if len(records) != messages or sum(n for _, n in records) != items:
        raise RuntimeError(
            f"{variant.name}: {len(records)} completions for {messages} messages "
            f"({sum(n for _, n in records)} items of {items})"
        )
    with app.connection_for_write(transport_options={"confirm_publish": False}) as connection:
        left = connection.default_channel.queue_declare(variant.queue, passive=True).message_count
    if left:
        raise RuntimeError(f"{variant.name}: {left} messages still ready after every completion")
    (first_time, first_items), (last_time, _) = records[0], records[-1]
    assert window_start is not None
    counted, broker_before, worker_before = window_start
    in_window = max(messages - counted, 1)
    return Drain(
        items_per_second=(items - first_items) / max(last_time - first_time, 1e-6),
        broker_cpu_ms_per_message=1000 * (broker_cpu - broker_before) / in_window,
        worker_cpu_ms_per_message=1000 * (worker_cpu - worker_before) / in_window,
    )


# ------------------------------------------------------------------------------------ run


def bench_environment(broker_url: str, scratch: Path) -> dict[str, str]:
    """Environment of the workers: both apps on ``broker_url``, files under ``scratch``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_"))},
        "CELERY_BROKER_URL": broker_url,
        BASELINE_BROKER_ENV: broker_url,
        COMPLETIONS_ENV: str(scratch / "completions"),
        "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3",
        "CELERY_HEARTBEAT_FILE": f"{scratch}/heartbeat",
        "PYTHONPATH": str(REPOSITORY),
    }


def declare_queues(app: Celery) -> None:
    """Declare an app's queues before anything is published to them."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).declare()


def calls_for(variant: Variant, items: int, chunk: int) -> list[tuple[str, tuple[Any, ...], str]]:
    """The messages that carry ``items`` items for a variant: one per item, or per chunk."""
    if variant.chunked:
        return [
            ("bench.noop_batch", (list(range(i, min(items, i + chunk))),), variant.queue)
            for i in range(0, items, chunk)
        ]
    return [("bench.noop", (), variant.queue)] * items


def summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _spread(values: list[float], fmt: str) -> str:
    median, low, high = summary(values)
    return f"{format(median, fmt)} ({format(low, fmt)}-{format(high, fmt)})"


def variants(prefetch: int) -> list[Variant]:
    return [
        Variant("Celery defaults, per item", platform=False, chunked=False),
        Variant("platform, per item, prefetch 1", platform=True, chunked=False),
        Variant(
            f"platform, per item, prefetch {prefetch}",
            platform=True,
            chunked=False,
            prefetch=prefetch,
        ),
        Variant("Celery defaults, chunked", platform=False, chunked=True),
        Variant("platform, chunked, prefetch 1", platform=True, chunked=True),
        Variant(
            f"platform, chunked, prefetch {prefetch}",
            platform=True,
            chunked=True,
            prefetch=prefetch,
        ),
    ]


def check_sizes(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """The size flags every broker bench shares (--items, --chunked-items, --chunk,
    --prefetch, --repeats): refused with the bound they break."""
    if arguments.items < 1000 or arguments.chunked_items < 10 * arguments.chunk:
        parser.error("--items must be >= 1000 and --chunked-items >= 10 x --chunk")
    if arguments.repeats < 1 or arguments.chunk < 2 or not 1 <= arguments.prefetch <= 256:
        parser.error("--repeats must be >= 1, --chunk >= 2 and --prefetch 1..256")


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
    parser.add_argument("--chunk", type=int, default=100, help="items per chunked message")
    parser.add_argument(
        "--prefetch", type=int, default=16, help="prefetch multiplier of the tuned variant"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of every variant")
    arguments = parser.parse_args(argv)
    check_sizes(parser, arguments)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the cluster and the worker are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from drills.rabbitmq_cluster import LocalRabbitMQCluster

    with tempfile.TemporaryDirectory() as scratch, LocalRabbitMQCluster(size=3) as cluster:
        broker_url = cluster.broker_url()
        environment = bench_environment(broker_url, Path(scratch))
        completions = Path(environment[COMPLETIONS_ENV])
        apps = {False: baseline_app(broker_url), True: platform_app(environment)}
        for app in apps.values():
            declare_queues(app)
        broker_pids = [cluster.beam_pid(node.name) for node in cluster.nodes]
        import celery as celery_package

        defaults = celery_defaults()
        print(
            f"RabbitMQ {cluster.version}, 3 local nodes on {os.cpu_count()} cores; Celery "
            f"{celery_package.__version__}; one worker --concurrency {CONCURRENCY} (prefork); "
            f"{arguments.items:,} items per item, {arguments.chunked_items:,} chunked by "
            f"{arguments.chunk}; {arguments.repeats} repeats, variants interleaved",
            flush=True,
        )
        print(
            "Celery defaults (celery.app.defaults): "
            + ", ".join(f"{key}={value}" for key, value in defaults.items()),
            flush=True,
        )
        plan = variants(arguments.prefetch)
        rates: dict[str, list[float]] = {v.name: [] for v in plan}
        ratios: dict[str, list[float]] = {v.name: [] for v in plan}
        broker_cpu: dict[str, list[float]] = {v.name: [] for v in plan}
        worker_cpu: dict[str, list[float]] = {v.name: [] for v in plan}
        for repeat in range(arguments.repeats):
            shift = repeat % len(plan)
            order = plan[shift:] + plan[:shift]
            measured: dict[str, Drain] = {}
            for variant in order:
                app = apps[variant.platform]
                items = arguments.chunked_items if variant.chunked else arguments.items
                calls = calls_for(variant, items, arguments.chunk)
                publish_with_confirm_window(app, calls)
                result = drain(
                    app,
                    variant,
                    len(calls),
                    items,
                    completions,
                    environment,
                    broker_pids,
                    timeout=max(120.0, items / 100),
                )
                measured[variant.name] = result
                print(
                    f"  repeat {repeat + 1}: {variant.name:<34} "
                    f"{result.items_per_second:>10,.0f} items/s  broker "
                    f"{result.broker_cpu_ms_per_message:.2f} ms CPU/msg  worker "
                    f"{result.worker_cpu_ms_per_message:.2f} ms CPU/msg",
                    flush=True,
                )
            for variant in plan:
                result = measured[variant.name]
                base = measured[plan[3 if variant.chunked else 0].name]
                rates[variant.name].append(result.items_per_second)
                ratios[variant.name].append(result.items_per_second / base.items_per_second)
                broker_cpu[variant.name].append(result.broker_cpu_ms_per_message)
                worker_cpu[variant.name].append(result.worker_cpu_ms_per_message)

        print()
        header = (
            f"{'variant':<34} {'items/s, median (min-max)':>28} {'vs defaults':>20} "
            f"{'broker ms CPU/msg':>18} {'worker ms CPU/msg':>18}"
        )
        print(header)
        print("-" * len(header))
        for variant in plan:
            print(
                f"{variant.name:<34} {_spread(rates[variant.name], ',.0f'):>28} "
                f"{_spread(ratios[variant.name], '.2f'):>20} "
                f"{statistics.median(broker_cpu[variant.name]):>18.2f} "
                f"{statistics.median(worker_cpu[variant.name]):>18.2f}"
            )
        per_item = [v for v in plan if v.platform and not v.chunked]
        chunked = [v for v in plan if v.platform and v.chunked]
        best_ratio = max(statistics.median(ratios[v.name]) for v in per_item)
        best_chunked = max(statistics.median(rates[v.name]) for v in chunked)
        print()
        print(
            f"goal: platform per item >= {PER_ITEM_GOAL:.1f}x Celery defaults: "
            f"{best_ratio:.2f}x median ({'met' if best_ratio >= PER_ITEM_GOAL else 'NOT met'})"
        )
        print(
            f"goal: chunked >= {CHUNKED_GOAL:,} items/s on the quorum queue: "
            f"{best_chunked:,.0f} median ({'met' if best_chunked >= CHUNKED_GOAL else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
