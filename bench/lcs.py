"""LCS benchmark: ``.venv/bin/python -m bench.lcs [--quick] [--repeats N]``.

Compares ``app.lcs.longest_common_substring`` (suffix array + LCP) with two baselines measured
in the same run, each with the same number of repeats (``--repeats``, default 5) and reported as
median (min-max): the naive O(n*m) dynamic programme (only at sizes where it finishes in
seconds) and ``difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match``, on
random DNA-like text (4 letters) and on repetitive English-like text. A difflib run that needs
more than ``--difflib-limit`` seconds is stopped and shown as a lower bound (">"). Then the
1M + 1M character case, timed the same way in a fresh child process, whose memory is the child's
maximum resident set size as the kernel counts it (``wait4``: Python objects, numpy and the C
library's own allocations alike), next to the same child without the LCS call. Goals: >= 100x
difflib at 10k; 1M + 1M in <= 2 s and <= 256 MiB.
"""

from __future__ import annotations

import argparse
import difflib
import json
import multiprocessing
import os
import queue
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from app.lcs import longest_common_substring

WORDS = [
    "the",
    "queue",
    "worker",
    "sends",
    "a",
    "task",
    "to",
    "the",
    "broker",
    "and",
    "the",
    "broker",
    "keeps",
    "the",
    "message",
]


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choices("ACGT", k=length))


def repetitive_text(rng: random.Random, length: int) -> str:
    parts: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(WORDS)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:length]


def naive(a: str, b: str) -> str:
    """O(len(a) * len(b)) dynamic programme over one row: the textbook approach."""
    best_length, best_end = 0, 0
    previous = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        current = [0] * (len(b) + 1)
        char = a[i - 1]
        for j in range(1, len(b) + 1):
            if char == b[j - 1]:
                value = previous[j - 1] + 1
                current[j] = value
                if value > best_length:
                    best_length, best_end = value, i
        previous = current
    return a[best_end - best_length : best_end]


def with_difflib(a: str, b: str) -> str:
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(
        0, len(a), 0, len(b)
    )
    return a[match.a : match.a + match.size]


def timed(
    function: Callable[[str, str], str], a: str, b: str, repeats: int
) -> tuple[list[float], str]:
    """Seconds of each of ``repeats`` calls, and the (last) answer."""
    times: list[float] = []
    result = ""
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(a, b)
        times.append(time.perf_counter() - started)
    return times, result


def _difflib_child(a: str, b: str, repeats: int, results: multiprocessing.Queue) -> None:
    for _ in range(repeats):
        started = time.perf_counter()
        match = with_difflib(a, b)
        results.put((time.perf_counter() - started, len(match)))


def difflib_time_boxed(a: str, b: str, repeats: int, limit: float) -> tuple[list[float], int]:
    """difflib's time for each run that finished within ``limit`` seconds, and its answer length
    (-1 when none did).

    difflib is quadratic on small alphabets (100k + 100k ACGT would take hours), so it runs in a
    forked child that is stopped once a run passes the limit; the table then shows a lower bound.
    """
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    child = context.Process(target=_difflib_child, args=(a, b, repeats, results))
    child.start()
    times: list[float] = []
    length = -1
    for _ in range(repeats):
        try:
            seconds, length = results.get(timeout=limit)
        except queue.Empty:
            break
        times.append(seconds)
    if child.is_alive():
        child.kill()
    child.join()
    return times, length


def summary(times: list[float]) -> str:
    """Milliseconds as median (min-max)."""
    median = statistics.median(times) * 1000
    if len(times) == 1:
        return f"{median:,.1f}"
    return f"{median:,.1f} ({min(times) * 1000:,.1f}-{max(times) * 1000:,.1f})"


_MILLION = """
import json, random, sys, time
from app.lcs import longest_common_substring
seed, repeats, compute = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
rng = random.Random(seed)
a = "".join(rng.choices("ACGT", k=1_000_000)); b = "".join(rng.choices("ACGT", k=1_000_000))
longest_common_substring(a[:1000], b[:1000])  # imports and warm-up outside the measurement
times, length = [], 0
for _ in range(repeats if compute else 0):
    started = time.perf_counter(); length = len(longest_common_substring(a, b))
    times.append(time.perf_counter() - started)
print(json.dumps({"times": times, "length": length}))
"""


def one_million_in_child(seed: int, repeats: int, *, compute: bool = True) -> dict[str, Any]:
    """The 1M + 1M case in a fresh interpreter: its times, and the child's max RSS (MiB) as the
    kernel reports it when the child ends. ``compute=False`` runs everything but the LCS call,
    which shows what the interpreter, the libraries and the two inputs alone take."""
    process = subprocess.Popen(
        [sys.executable, "-c", _MILLION, str(seed), str(repeats), "1" if compute else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"the 1M child failed with exit code {process.returncode}")
    result = json.loads(output)
    result["max_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lcs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 100k inputs")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per measurement, the same on every side"
    )
    parser.add_argument(
        "--difflib-limit",
        type=float,
        default=60.0,
        help="seconds one difflib run may take before it is stopped",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeats < 1 or arguments.difflib_limit <= 0:
        parser.error("--repeats must be >= 1 and --difflib-limit > 0")
    rng = random.Random(arguments.seed)

    sizes = [1_000, 10_000] if arguments.quick else [1_000, 10_000, 100_000]
    naive_limit = 2_000
    print(f"{arguments.repeats} runs per measurement on every side; ms as median (min-max)")
    header = (
        f"{'input':>12} {'chars':>8} {'ours ms':>22} {'difflib ms':>28} {'x difflib':>10} "
        f"{'naive ms':>22} {'x naive':>8} {'LCS len':>8}"
    )
    print(header, flush=True)
    print("-" * len(header))
    for kind, make in (("random-ACGT", random_text), ("repetitive", repetitive_text)):
        for size in sizes:
            a, b = make(rng, size), make(rng, size)
            ours_times, ours = timed(longest_common_substring, a, b, arguments.repeats)
            ours_median = statistics.median(ours_times)
            difflib_times, difflib_length = difflib_time_boxed(
                a, b, arguments.repeats, arguments.difflib_limit
            )
            if len(difflib_times) < arguments.repeats:
                # Stopped at the limit: what finished (if anything) and a lower bound.
                bound = max([*difflib_times, arguments.difflib_limit])
                difflib_text = f">{bound * 1000:,.0f}"
                difflib_ratio = f">{bound / ours_median:,.0f}x"
            else:
                if difflib_length != len(ours):
                    raise AssertionError(
                        f"{kind} {size}: difflib {difflib_length}, ours {len(ours)}"
                    )
                difflib_text = summary(difflib_times)
                difflib_ratio = f"{statistics.median(difflib_times) / ours_median:,.0f}x"
            naive_text = naive_ratio = "-"
            if size <= naive_limit:
                naive_times, by_naive = timed(naive, a, b, arguments.repeats)
                if len(by_naive) != len(ours):
                    raise AssertionError(f"{kind} {size}: naive {len(by_naive)}, ours {len(ours)}")
                naive_text = summary(naive_times)
                naive_ratio = f"{statistics.median(naive_times) / ours_median:,.0f}x"
            print(
                f"{kind:>12} {size:>8,} {summary(ours_times):>22} {difflib_text:>28} "
                f"{difflib_ratio:>10} {naive_text:>22} {naive_ratio:>8} {len(ours):>8}",
                flush=True,
            )
    million = one_million_in_child(arguments.seed, arguments.repeats)
    without = one_million_in_child(arguments.seed, arguments.repeats, compute=False)
    print()
    print(
        f"1M + 1M random ACGT: {summary(million['times'])} ms over {arguments.repeats} runs "
        f"(goal <= 2,000 ms); child max RSS {million['max_rss_mib']:.0f} MiB "
        f"(goal <= 256 MiB; the same child without the LCS call: "
        f"{without['max_rss_mib']:.0f} MiB); LCS length {million['length']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
