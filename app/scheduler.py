"""``python -m app.scheduler TASK [options]``: enqueue many tasks, with a progress bar and the rate.

Owns: the command line for bulk work (the blog's 10k counter tasks, drills, benchmarks) and
small operational commands (``sweep``, ``completions``). Every option is explained by
``--help``; a bad value exits 2 with a message naming the option.

Does not own: what the tasks do (``app.tasks``) or how LCS jobs are stored (``app.jobs``).

Examples::

    python -m app.scheduler count --n 10000 --seconds 1
    python -m app.scheduler --window 1 noop --n 10000     # one confirm per message
    python -m app.scheduler record --n 5000 --prefix drill-1
    python -m app.scheduler completions --prefix drill-1
    python -m app.scheduler lcs --n 20 --length 5000
    python -m app.scheduler wordcount --documents 2000 --chunk-size 100 --wait
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from app import jobs
from app.broker import PublishFailed, PublishTrace, TaskCall, TaskPublisher
from app.celery_app import HaCelery, make_celery
from app.db import DatabaseStillUnavailable, retry_while_unavailable
from app.publish_window import DEFAULT_WINDOW, WindowedPublisher, WindowTrace, check_window
from app.settings import DEFAULT_QUEUE, QUEUES, AppSettings, SettingsError

Call = TaskCall | tuple[str, tuple[Any, ...], str]
"""What ``send_many`` publishes for task ``i``: a :class:`~app.broker.TaskCall`, or
``(name, args, queue)``."""


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range {low}..{high}")
        return value

    return parse


def _seconds(high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
        if not 0 <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range 0..{high:g} seconds")
        return value

    return parse


def _window(raw: str) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    try:
        return check_window(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("window: ")) from None


def _rate(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of tasks per second") from None
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give 0 < rate <= 1000000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.scheduler",
        description="Enqueue tasks in bulk and print the publishing rate. The broker and database "
        "come from CELERY_BROKER_URL and DATABASE_URL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not draw a progress bar (e.g. in logs)"
    )
    parser.add_argument(
        "--publishers",
        type=_whole_number(1, 64),
        default=4,
        help="publishing threads, each with its own broker connection",
    )
    parser.add_argument(
        "--window",
        type=_window,
        default=DEFAULT_WINDOW,
        help="unconfirmed messages each publisher may have in flight: the broker confirms "
        "them as they are stored, a nack or a lost connection sends exactly the unconfirmed "
        "ones again (same task ids); 1 waits for each confirm before the next message",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=None,
        help="publish at most this many tasks per second in total (default: as fast as the "
        "broker confirms); a steady load for drills",
    )
    parser.add_argument(
        "--retry-seconds",
        type=_seconds(3600),
        default=60.0,
        help="keep retrying one task's publish this long, node after node of the failover "
        "list, after a connection error or a confirm that did not come in time (e.g. a broker "
        "node dying or going silent) before giving up; 'lcs' also waits this long for an "
        "unavailable database before giving up",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="TASK")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )

    def queue_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--queue", choices=QUEUES, default=DEFAULT_QUEUE, help="queue to send the tasks to"
        )

    count = command("count", "N counter tasks, each sleeping --seconds seconds while counting")
    count.add_argument(
        "--n", type=_whole_number(1, 10_000_000), default=10_000, help="number of tasks"
    )
    count.add_argument(
        "--seconds", type=_whole_number(0, 3600), default=1, help="seconds each task runs"
    )
    queue_option(count)

    record = command(
        "record",
        "N idempotent 'record' tasks with keys PREFIX-00000..; "
        "check them with the 'completions' command",
    )
    record.add_argument(
        "--n", type=_whole_number(1, 10_000_000), default=5000, help="number of tasks"
    )
    record.add_argument("--prefix", required=True, help="key prefix, unique per run")
    record.add_argument(
        "--work-seconds",
        type=_seconds(600),
        default=0.0,
        help="seconds each task sleeps between its start and its completion",
    )
    record.add_argument(
        "--countdown",
        type=_seconds(86_400),
        default=None,
        help="deliver each task this many seconds after it is published (countdown/ETA "
        "through the broker's delayed delivery)",
    )
    queue_option(record)

    noop = command("noop", "N tasks that do nothing (per-task overhead)")
    noop.add_argument(
        "--n", type=_whole_number(1, 10_000_000), default=10_000, help="number of tasks"
    )
    queue_option(noop)

    batch = command("noop-batch", "N items sent as tasks of --batch-size items each")
    batch.add_argument(
        "--n", type=_whole_number(1, 100_000_000), default=100_000, help="number of items"
    )
    batch.add_argument(
        "--batch-size", type=_whole_number(1, 100_000), default=100, help="items per task"
    )
    queue_option(batch)

    lcs = command("lcs", "N LCS jobs on random strings, stored and routed like web submissions")
    lcs.add_argument("--n", type=_whole_number(1, 100_000), default=10, help="number of jobs")
    lcs.add_argument(
        "--length",
        type=_whole_number(0, 1_000_000),
        default=500,
        help="characters of each of the two strings",
    )
    lcs.add_argument("--alphabet", default="ACGT", help="characters to draw from")
    lcs.add_argument("--seed", type=int, default=None, help="random seed (default: random)")

    words = command(
        "wordcount", "word count over random documents: a chord of chunk tasks and one merge task"
    )
    words.add_argument(
        "--documents",
        type=_whole_number(1, 1_000_000),
        default=1000,
        help="number of documents to create",
    )
    words.add_argument(
        "--words-per-document",
        type=_whole_number(1, 100_000),
        default=200,
        help="words in each document",
    )
    words.add_argument(
        "--chunk-size", type=_whole_number(1, 100_000), default=100, help="documents per map task"
    )
    words.add_argument("--wait", action="store_true", help="wait for the result and print it")
    words.add_argument(
        "--timeout",
        type=_seconds(86_400),
        default=300.0,
        help="with --wait: give up (exit 1) after this many seconds",
    )
    words.add_argument("--seed", type=int, default=None, help="random seed (default: random)")

    sweep = command(
        "sweep",
        "publish again LCS jobs left 'pending' (their publisher died "
        "before the broker confirmed); run it every few minutes",
    )
    sweep.add_argument(
        "--older-than",
        type=_seconds(86_400),
        default=60.0,
        help="only jobs pending for at least this many seconds",
    )
    sweep.add_argument(
        "--running-older-than",
        type=_seconds(7 * 86_400),
        default=1800.0,
        help="also publish again jobs still 'running' this many seconds after they first "
        "started (their message was lost); must exceed the longest job",
    )
    sweep.add_argument(
        "--wait-for-database",
        type=_seconds(3600),
        default=120.0,
        help="while the database is unavailable, wait (with backoff) this long and resume "
        "before giving up with exit 1; below the CronJob's activeDeadlineSeconds (240)",
    )

    completions = command("completions", "count completed and duplicated 'record' tasks")
    completions.add_argument("--prefix", required=True, help="key prefix given to 'record'")
    completions.add_argument(
        "--expect",
        type=_whole_number(0, 100_000_000),
        default=None,
        help="exit 1 unless exactly this many keys completed",
    )
    return parser


def send_many(
    celery: HaCelery,
    total: int,
    make_call: Callable[[int], Call],
    *,
    unit: str,
    progress: bool,
    publishers: int = 4,
    rate: float | None = None,
    retry_seconds: float = 60.0,
    stats: PublishStats | None = None,
    window: int = DEFAULT_WINDOW,
) -> float:
    """Publish ``total`` tasks from ``publishers`` threads; returns the elapsed seconds.

    Every task counts as sent only once the broker confirmed it (a quorum write, ~5 ms here).
    With ``window`` > 1 each thread's connection keeps up to ``window`` messages unconfirmed
    (:class:`~app.publish_window.WindowedPublisher`): a nack or a lost connection sends
    exactly the unconfirmed ones again, with the same task ids, on the next node of the
    failover list. With ``window`` 1 each publish waits for its own confirm
    (:class:`~app.broker.TaskPublisher`), so one thread tops out near 200 tasks/s.
    ``rate`` paces the tasks evenly (task ``i`` is not sent before ``i / rate`` seconds).

    Either way no wait is unbounded (a silent node cannot hold a publisher longer than the
    confirm timeout), and a task is retried on the next node for up to ``retry_seconds``
    from its first write. A message whose confirm never arrived may have been stored anyway,
    so a retry can enqueue a task twice: tasks are idempotent, and at least once is the
    contract. ``stats`` (if given) counts the retries and the longest waits.
    """
    started = time.perf_counter()
    sent = 0
    lock = threading.Lock()
    failed = threading.Event()
    errors: list[BaseException] = []
    stats = stats if stats is not None else PublishStats()

    with tqdm(total=total, unit=unit, disable=not progress, smoothing=0.1) as bar:

        def confirmed(count: int) -> None:
            nonlocal sent
            with lock:
                sent += count
                bar.update(count)

        def wait_for_turn(index: int) -> float:
            """Seconds until task ``index`` is due at ``rate``."""
            return started + index / rate - time.perf_counter() if rate is not None else 0.0

        def one_confirm_each(offset: int) -> None:
            with celery.connection_for_write() as connection:
                publisher = TaskPublisher(celery, connection=connection, budget=retry_seconds)
                for index in range(offset, total, publishers):
                    if failed.is_set():
                        return
                    delay = wait_for_turn(index)
                    if delay > 0:
                        time.sleep(delay)
                    trace = publisher.publish(_as_task_call(make_call(index)))
                    with lock:
                        stats.add(trace)
                    confirmed(1)

        def windowed(offset: int) -> None:
            publisher = WindowedPublisher(celery, window=window, budget=retry_seconds)
            indices = range(offset, total, publishers)
            trace = publisher.publish(
                (_as_task_call(make_call(index)) for index in indices),
                on_confirmed=confirmed,
                pace=None if rate is None else lambda k: wait_for_turn(indices[k]),
                stop=failed,
            )
            with lock:
                stats.add_window(trace)

        def publish_every_nth(offset: int) -> None:
            try:
                (windowed if window > 1 else one_confirm_each)(offset)
            except BaseException as error:
                errors.append(error)
                failed.set()

        threads = [
            threading.Thread(target=publish_every_nth, args=(offset,), name=f"publisher-{offset}")
            for offset in range(min(publishers, total))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise PublishError(
            f"publishing stopped after {sent} of {total} {unit} (each counted publish was "
            f"confirmed, so at least {sent} were enqueued): {type(errors[0]).__name__}: "
            f"{errors[0]}"
        ) from errors[0]
    return time.perf_counter() - started


@dataclass
class PublishStats:
    """What happened while publishing: retried publishes, the last error, the longest waits."""

    retries: int = 0
    last_error: str | None = None
    longest_call_seconds: float = 0.0
    """The longest single publish attempt (connect, write, wait for the confirm)."""
    longest_publish_seconds: float = 0.0
    """The longest time one task took to be confirmed, retries on other nodes included."""

    nacked: int = 0
    """Messages the broker nacked (not stored), each sent again (windowed publishing)."""
    republished: int = 0
    """Messages sent again after a nack or a lost connection (windowed publishing)."""

    def add_window(self, trace: WindowTrace) -> None:
        """One windowed publisher's run: each failover is a retry of the window."""
        self.retries += max(0, trace.connections - 1)
        self.nacked += trace.nacked
        self.republished += trace.republished
        if trace.errors:
            self.last_error = trace.errors[-1]
        self.longest_call_seconds = max(self.longest_call_seconds, trace.longest_attempt_seconds)
        self.longest_publish_seconds = max(
            self.longest_publish_seconds, trace.longest_confirm_seconds
        )

    def add(self, trace: PublishTrace) -> None:
        self.retries += trace.attempts - 1
        if trace.errors:
            self.last_error = trace.errors[-1]
        self.longest_call_seconds = max(self.longest_call_seconds, trace.longest_attempt_seconds)
        self.longest_publish_seconds = max(self.longest_publish_seconds, trace.seconds)


def _as_task_call(call: Call) -> TaskCall:
    if isinstance(call, TaskCall):
        return call
    name, args, queue = call
    return TaskCall(name=name, args=tuple(args), queue=queue)


class PublishError(RuntimeError):
    """Publishing stopped part-way; the message says how many tasks were enqueued."""


def _report(sent: int, unit: str, seconds: float, stats: PublishStats | None = None) -> None:
    rate = sent / seconds if seconds > 0 else float("inf")
    print(f"sent {sent} {unit} in {seconds:.2f} s ({rate:,.0f} {unit}/s)")
    if stats is not None:
        print(
            f"  longest publish call {stats.longest_call_seconds:.3f} s, longest until "
            f"confirmed {stats.longest_publish_seconds:.3f} s"
        )
        if stats.retries:
            print(f"  retried {stats.retries} publish(es) after errors (last: {stats.last_error})")
        if stats.nacked or stats.republished:
            print(
                f"  sent {stats.republished} message(s) again with their task ids "
                f"({stats.nacked} nacked, the rest unconfirmed when a connection failed)"
            )


def _random_text(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choices(alphabet, k=length))


_VOCABULARY = [
    "queue",
    "worker",
    "broker",
    "quorum",
    "leader",
    "follower",
    "replica",
    "message",
    "ack",
    "nack",
    "retry",
    "chord",
    "group",
    "chunk",
    "task",
    "result",
    "cluster",
    "node",
    "partition",
    "heartbeat",
    "failover",
    "backup",
    "restore",
    "archive",
    "wal",
    "pod",
    "deployment",
    "service",
    "ingress",
    "volume",
    "snapshot",
    "bucket",
    "zone",
    "region",
    "network",
    "latency",
]


def _simple_enqueue(
    arguments: argparse.Namespace,
) -> tuple[int, Callable[[int], Call]] | None:
    """For the commands that only publish N tasks: how many, and the call for task ``i``."""
    command, queue = arguments.command, getattr(arguments, "queue", None)
    if command == "count":
        return arguments.n, lambda _i: ("count", (arguments.seconds,), queue)
    if command == "record":
        width = max(5, len(str(arguments.n - 1)))
        return arguments.n, lambda i: TaskCall(
            name="record",
            args=(f"{arguments.prefix}-{i:0{width}d}", arguments.work_seconds),
            queue=queue,
            countdown=arguments.countdown,
        )
    if command == "noop":
        return arguments.n, lambda _i: ("noop", (), queue)
    if command == "noop-batch":
        batches = list(_batches(arguments.n, arguments.batch_size))
        return len(batches), lambda i: ("noop_batch", (batches[i],), queue)
    return None


def run(arguments: argparse.Namespace, settings: AppSettings) -> int:
    celery = make_celery(settings)
    progress = not arguments.no_progress
    stats = PublishStats()
    command = arguments.command
    enqueue = _simple_enqueue(arguments)
    if enqueue is not None:
        total, make_call = enqueue
        seconds = send_many(
            celery,
            total,
            make_call,
            unit="tasks",
            progress=progress,
            publishers=arguments.publishers,
            rate=arguments.rate,
            retry_seconds=arguments.retry_seconds,
            stats=stats,
            window=arguments.window,
        )
        _report(total, "tasks", seconds, stats)
        print(
            f"  {arguments.publishers} publisher(s), "
            + (f"window {arguments.window} unconfirmed each" if arguments.window > 1
               else "one confirm per message")
        )
        if command == "noop-batch":
            print(f"  = {arguments.n / seconds:,.0f} items/s published")
    elif command == "lcs":
        return _run_lcs(arguments, settings, celery, progress)
    elif command == "wordcount":
        return _run_wordcount(arguments, celery)
    elif command == "sweep":
        from app.web import celery_publisher

        publish = celery_publisher(celery)
        try:
            # The whole sweep is repeated after an outage: it is idempotent (a job published
            # twice runs once), and the rows it reads may have moved on meanwhile.
            republished = retry_while_unavailable(
                lambda: jobs.republish_stale_jobs(
                    celery.engine(),
                    publish,
                    older_than=dt.timedelta(seconds=arguments.older_than),
                    running_older_than=dt.timedelta(seconds=arguments.running_older_than),
                ),
                budget=arguments.wait_for_database,
                what="sweep",
            )
        except DatabaseStillUnavailable as error:
            print(f"{error}; the next run sweeps again", file=sys.stderr)
            return 1
        except jobs.SweepStopped as stopped:
            print(
                f"republished {len(stopped.republished)} pending job(s), then stopped: "
                f"{stopped}; the rest stay pending for the next run",
                file=sys.stderr,
            )
            return 1
        print(f"republished {len(republished)} pending job(s)")
    elif command == "completions":
        summary = jobs.completion_summary(celery.engine(), arguments.prefix)
        print(
            f"keys completed: {summary.keys_completed}  duplicated: {summary.keys_duplicated}  "
            f"executions: {summary.executions}"
        )
        if arguments.expect is not None and summary.keys_completed != arguments.expect:
            print(f"expected {arguments.expect} completed keys", file=sys.stderr)
            return 1
    return 0


def _batches(total: int, size: int) -> Iterator[list[int]]:
    for start in range(0, total, size):
        yield list(range(start, min(total, start + size)))


def _run_lcs(
    arguments: argparse.Namespace, settings: AppSettings, celery: HaCelery, progress: bool
) -> int:
    from app.web import celery_publisher

    if not arguments.alphabet:
        print("--alphabet must not be empty", file=sys.stderr)
        return 2
    rng = random.Random(arguments.seed)
    publish = celery_publisher(celery)
    queues: dict[str, int] = {}
    started = time.perf_counter()
    for _ in tqdm(range(arguments.n), unit="jobs", disable=not progress):
        job_input = jobs.LcsInput(
            a=_random_text(rng, arguments.alphabet, arguments.length),
            b=_random_text(rng, arguments.alphabet, arguments.length),
        )
        # A database outage pauses the run and it resumes with the same job (nothing of it
        # was stored: the row is one transaction, written before the publish).
        _, queue = retry_while_unavailable(
            lambda job_input=job_input: jobs.create_lcs_job(
                celery.engine(), settings, job_input, publish
            ),
            budget=arguments.retry_seconds,
            what="submitting an lcs job",
        )
        queues[queue] = queues.get(queue, 0) + 1
    _report(arguments.n, "jobs", time.perf_counter() - started)
    print("  by queue: " + ", ".join(f"{name}={count}" for name, count in sorted(queues.items())))
    return 0


def _run_wordcount(arguments: argparse.Namespace, celery: HaCelery) -> int:
    from app import tasks, wordcount

    rng = random.Random(arguments.seed)
    texts = [
        " ".join(rng.choices(_VOCABULARY, k=arguments.words_per_document))
        for _ in range(arguments.documents)
    ]
    document_ids = wordcount.store_documents(celery.engine(), texts)
    started = time.perf_counter()
    job_id = tasks.start_word_count(celery, document_ids, chunk_size=arguments.chunk_size)
    chunks = -(-arguments.documents // arguments.chunk_size)
    print(f"word count job {job_id}: {chunks} chunk task(s) + 1 merge task")
    if not arguments.wait:
        return 0
    while True:
        job = wordcount.get_word_count_job(celery.engine(), job_id)
        if job is not None and job.status == "succeeded":
            break
        if time.perf_counter() - started > arguments.timeout:
            print(
                f"no result after {arguments.timeout:g} s (are workers consuming "
                f"'{DEFAULT_QUEUE}'?)",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    print(f"done in {elapsed:.2f} s: {job.total_words} words, top 5: {job.top_words[:5]}")
    return 0


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        settings = AppSettings.from_environ(os.environ if environ is None else environ)
    except SettingsError as error:
        print(f"invalid configuration: {error}", file=sys.stderr)
        return 2
    try:
        return run(arguments, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (jobs.EnqueueError, PublishError, PublishFailed, DatabaseStillUnavailable) as error:
        print(f"stopped: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
