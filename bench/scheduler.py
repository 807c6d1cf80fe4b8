"""Scheduler publish rate: ``.venv/bin/python -m bench.scheduler``.

The scheduler's own command, ``python -m app.scheduler --no-progress --window W noop --n N``,
run as a child process against a fresh local 3-node RabbitMQ cluster (``drills.rabbitmq_cluster``,
booted from the deployed config: the app's queues are quorum queues, like prod), once with one
confirm per message (``--window 1``: each publish waits for its confirm, the scheduler before
the window) and once with the window (``--window``, default the scheduler's), interleaved and
repeated (``--repeats``, default 3; the order alternates), with the same ``--publishers``.

Each run's rate is the one the command prints ("sent N tasks in S s (R tasks/s)"): from the
first publish to the last confirm, start-up excluded. After each run the queue must hold exactly
N messages (no node was lost, so nothing may be missing or doubled); it is then purged, so every
run starts on an empty queue. Reported: tasks/s median (min-max) per variant, and the ratio
windowed / one-by-one of each repeat, median (min-max). Goal: >= 1.5x. Numbers, not pass/fail;
the cluster is removed at the end, even on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.broker import TaskCall
from app.publish_window import DEFAULT_WINDOW, check_window

REPOSITORY = Path(__file__).resolve().parents[1]
GOAL = 1.5
"""Windowed publishing against one confirm per message, same run (issue 13)."""
_RATE = re.compile(r"sent (\d+) tasks in ([\d.]+) s \(([\d,]+) tasks/s\)")


def scheduler_rate(broker_url: str, *, tasks: int, window: int, publishers: int) -> float:
    """Run the scheduler's command once; the tasks/s it prints."""
    command = [
        sys.executable, "-m", "app.scheduler", "--no-progress", "--publishers", str(publishers),
        "--window", str(window), "noop", "--n", str(tasks),
    ]
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_"))},
        "CELERY_BROKER_URL": broker_url,
        "PYTHONPATH": str(REPOSITORY),
    }
    result = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True,
                            text=True, timeout=max(120.0, tasks / 20))
    match = _RATE.search(result.stdout)
    if result.returncode != 0 or match is None or int(match[1]) != tasks:
        raise RuntimeError(
            f"window {window}: exit {result.returncode}\n{result.stdout}\n{result.stderr[-2000:]}"
        )
    return tasks / float(match[2])


def in_process_rate(celery, *, tasks: int, window: int, publishers: int) -> float:  # type: ignore[no-untyped-def]
    """The same publishing through ``app.scheduler.send_many`` in this process (quicker to
    start: the regression guard uses it)."""
    from app.scheduler import send_many
    from app.settings import DEFAULT_QUEUE

    call = TaskCall(name="noop", queue=DEFAULT_QUEUE)
    seconds = send_many(celery, tasks, lambda _i: call, unit="tasks", progress=False,
                        publishers=publishers, window=window)
    return tasks / seconds


def queued_then_purged(broker_url: str) -> int:
    """Messages in the default queue, which is then emptied for the next run."""
    from kombu import Connection

    from app.settings import DEFAULT_QUEUE

    with Connection(broker_url.split(";")[0], connect_timeout=10) as connection:
        channel = connection.default_channel
        count = channel.queue_declare(DEFAULT_QUEUE, passive=True).message_count
        channel.queue_purge(DEFAULT_QUEUE)
    return count


def interleaved(
    measure: Callable[[int], float], windows: tuple[int, int], repeats: int,
    after_run: Callable[[int, float], None] = lambda _window, _rate: None,
) -> dict[int, list[float]]:
    """``measure(window)`` for both windows, ``repeats`` times, the order alternating."""
    rates: dict[int, list[float]] = {window: [] for window in windows}
    for repeat in range(repeats):
        for window in windows if repeat % 2 == 0 else windows[::-1]:
            rate = measure(window)
            rates[window].append(rate)
            after_run(window, rate)
    return rates


def ratios(rates: dict[int, list[float]], windows: tuple[int, int]) -> list[float]:
    """Windowed / one-by-one, repeat by repeat."""
    one, many = windows
    return [fast / slow for fast, slow in zip(rates[many], rates[one], strict=True)]


def spread(values: list[float], fmt: str) -> str:
    return (
        f"{format(statistics.median(values), fmt)} "
        f"({format(min(values), fmt)}-{format(max(values), fmt)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scheduler", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks per run")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="the windowed variant's --window")
    parser.add_argument("--publishers", type=int, default=4, help="--publishers of every run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    arguments = parser.parse_args(argv)
    try:
        check_window(arguments.window)
    except ValueError as error:
        parser.error(f"--{error}")
    if arguments.window < 2 or arguments.tasks < 100 or arguments.repeats < 1:
        parser.error("--window must be >= 2, --tasks >= 100 and --repeats >= 1")
    if not 1 <= arguments.publishers <= 64:
        parser.error("--publishers must be 1..64")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from drills.rabbitmq_cluster import LocalRabbitMQCluster

    windows = (1, arguments.window)
    names = {1: "one confirm per message (--window 1)",
             arguments.window: f"window {arguments.window} (--window {arguments.window})"}
    with LocalRabbitMQCluster(size=3) as cluster:
        broker_url = cluster.broker_url()
        print(
            f"RabbitMQ {cluster.version}, 3 local nodes on {os.cpu_count()} cores, quorum queue; "
            f"python -m app.scheduler --publishers {arguments.publishers} noop --n "
            f"{arguments.tasks:,}; {arguments.repeats} repeats, interleaved",
            flush=True,
        )

        def measure(window: int) -> float:
            return scheduler_rate(broker_url, tasks=arguments.tasks, window=window,
                                  publishers=arguments.publishers)

        def check_and_print(window: int, rate: float) -> None:
            held = queued_then_purged(broker_url)
            if held != arguments.tasks:
                raise RuntimeError(f"{names[window]}: the queue held {held} of {arguments.tasks}")
            print(f"  {names[window]:<40} {rate:>8,.0f} tasks/s", flush=True)

        started = time.monotonic()
        rates = interleaved(measure, windows, arguments.repeats, check_and_print)
        measured = ratios(rates, windows)
        print()
        print(f"{'variant':<40} {'tasks/s, median (min-max)':>28}")
        for window in windows:
            print(f"{names[window]:<40} {spread(rates[window], ',.0f'):>28}")
        median = statistics.median(measured)
        print(f"\nwindowed / one-by-one, per repeat: {spread(measured, '.2f')}x")
        print(f"goal: >= {GOAL}x one confirm per message: {median:.2f}x median "
              f"({'met' if median >= GOAL else 'NOT met'}); {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
