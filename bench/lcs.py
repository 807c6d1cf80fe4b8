"""LCS benchmark: ``.venv/bin/python -m bench.lcs [--quick]``.

Compares ``app.lcs.longest_common_substring`` (suffix array + LCP) with two baselines measured
in the same run: the naive O(n*m) dynamic programme (only at sizes where it finishes in
seconds) and ``difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match``, on
random DNA-like text (4 letters) and on repetitive English-like text. Then the 1M + 1M character
case, with its peak memory (tracemalloc, which sees numpy and ctypes buffers) in a fresh child
process so earlier runs do not inflate it. Goals: >= 100x difflib at 10k; 1M + 1M in <= 2 s and
<= 256 MiB.
"""

from __future__ import annotations

import argparse
import difflib
import json
import multiprocessing
import random
import subprocess
import sys
import time
from collections.abc import Callable

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


def timed(function: Callable[[str, str], str], a: str, b: str, repeat: int) -> tuple[float, str]:
    best = float("inf")
    result = ""
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(a, b)
        best = min(best, time.perf_counter() - started)
    return best, result


def _difflib_child(a: str, b: str, results: multiprocessing.Queue) -> None:
    started = time.perf_counter()
    match = with_difflib(a, b)
    results.put((time.perf_counter() - started, len(match)))


def difflib_time_boxed(a: str, b: str, limit: float) -> tuple[float, int] | None:
    """difflib's time and answer length, or None when it needs more than ``limit`` seconds.

    difflib is quadratic on small alphabets (100k + 100k ACGT would take hours), so it runs in a
    forked child that is stopped at the limit; the table then shows a lower bound.
    """
    results: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_difflib_child, args=(a, b, results))
    child.start()
    child.join(limit)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return results.get()


def one_million_in_child(seed: int) -> dict[str, float]:
    code = f"""
import json, random, time, tracemalloc, resource
from app.lcs import longest_common_substring
rng = random.Random({seed})
a = "".join(rng.choices("ACGT", k=1_000_000)); b = "".join(rng.choices("ACGT", k=1_000_000))
longest_common_substring(a[:1000], b[:1000])  # import and warm-up outside the measurement
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter(); result = longest_common_substring(a, b)
seconds = time.perf_counter() - started
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start(); longest_common_substring(a, b)
peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
print(json.dumps({{"seconds": seconds, "length": len(result), "peak_mib": peak / 2**20,
                  "rss_growth_mib": (rss_after - rss_before) / 1024,
                  "rss_peak_mib": rss_after / 1024}}))
"""
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lcs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 100k difflib runs")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--difflib-limit",
        type=float,
        default=60.0,
        help="seconds one difflib run may take before it is stopped",
    )
    arguments = parser.parse_args(argv)
    rng = random.Random(arguments.seed)

    sizes = [1_000, 10_000] if arguments.quick else [1_000, 10_000, 100_000]
    naive_limit = 2_000
    header = (
        f"{'input':>12} {'chars':>8} {'ours ms':>9} {'difflib ms':>11} {'x difflib':>10} "
        f"{'naive ms':>10} {'x naive':>8} {'LCS len':>8}"
    )
    print(header, flush=True)
    print("-" * len(header))
    for kind, make in (("random-ACGT", random_text), ("repetitive", repetitive_text)):
        for size in sizes:
            a, b = make(rng, size), make(rng, size)
            repeat = 5 if size <= 10_000 else 1
            ours_seconds, ours = timed(longest_common_substring, a, b, repeat)
            boxed = difflib_time_boxed(a, b, arguments.difflib_limit)
            if boxed is None:
                difflib_text = f">{arguments.difflib_limit * 1000:.0f}"
                difflib_ratio = f">{arguments.difflib_limit / ours_seconds:.0f}x"
            else:
                difflib_seconds, difflib_length = boxed
                assert difflib_length == len(ours), (kind, size, difflib_length, len(ours))
                difflib_text = f"{difflib_seconds * 1000:.1f}"
                difflib_ratio = f"{difflib_seconds / ours_seconds:.0f}x"
            naive_text = naive_ratio = "-"
            if size <= naive_limit:
                naive_seconds, by_naive = timed(naive, a, b, 1)
                assert len(by_naive) == len(ours)
                naive_text = f"{naive_seconds * 1000:10.1f}"
                naive_ratio = f"{naive_seconds / ours_seconds:7.0f}x"
            print(
                f"{kind:>12} {size:>8} {ours_seconds * 1000:9.2f} {difflib_text:>11} "
                f"{difflib_ratio:>10} {naive_text:>10} {naive_ratio:>8} "
                f"{len(ours):>8}",
                flush=True,
            )
    million = one_million_in_child(arguments.seed)
    print()
    print(
        f"1M + 1M random ACGT: {million['seconds']:.2f} s (goal <= 2 s), "
        f"peak traced memory {million['peak_mib']:.0f} MiB (goal <= 256 MiB), "
        f"process max RSS {million['rss_peak_mib']:.0f} MiB "
        f"(+{million['rss_growth_mib']:.0f} MiB during the call), "
        f"LCS length {million['length']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
