"""Regression guards for the README's headline figures.

Each guard is a ratio measured in the same run against a baseline that runs beside it on the
same machine, with a floor far below what the benchmark reports (so a loaded 2-core CI machine
never trips it) but far above what a real regression would leave. A failure names the figure,
the measured ratio and the floor. The numbers themselves come from ``bench/``; these only catch
a change that throws them away.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.lcs import longest_common_substring
from bench import lcs as lcs_bench
from bench import scheduler as scheduler_bench
from bench import throughput

LCS_VS_DIFFLIB_FLOOR = 100.0
"""README: 10k random ACGT, ours against difflib (goal >= 100x; measured 800x-1,900x)."""
MILLION_VS_REFERENCE_CEILING = 5.0
"""README: 1M + 1M in <= 2 s. Against a stable numpy argsort of 2M integers timed in the same run
(about as long as the LCS here: ~0.9x); 2 s is ~10x that reference on this machine."""
CHUNKED_VS_PER_ITEM_FLOOR = 20.0
"""README: chunks of 100 move 80x-100x the items of one task per item on the same worker."""
WINDOW_VS_ONE_CONFIRM_FLOOR = 1.1
"""README: the scheduler with its window of unconfirmed publishes against one confirm per
message (2x-3x through the 3-node cluster). Below 1.1x the window no longer overlaps the
confirms' round trips."""
PLATFORM_VS_DEFAULTS_FLOOR = 0.2
"""README: per item, the platform at prefetch 16 against Celery's defaults (0.64x-0.99x through
the 3-node cluster in the last bench.throughput run). Below 0.2x something gave back what
prefetch and the event settings won."""


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def guard(figure: str, measured: float, floor: float, *, at_most: bool = False) -> None:
    ok = measured <= floor if at_most else measured >= floor
    bound = "ceiling" if at_most else "floor"
    print(f"{figure}: {measured:.2f}x ({bound} {floor:.2f}x)")
    assert ok, f"{figure}: measured {measured:.2f}x, {bound} {floor:.2f}x"


def test_lcs_at_ten_thousand_characters_stays_far_ahead_of_difflib() -> None:
    rng = random.Random(7)
    a, b = lcs_bench.random_text(rng, 10_000), lcs_bench.random_text(rng, 10_000)
    ours = median_seconds(lambda: longest_common_substring(a, b), repeats=5)
    difflib_seconds = median_seconds(lambda: lcs_bench.with_difflib(a, b), repeats=1)
    assert len(lcs_bench.with_difflib(a, b)) == len(longest_common_substring(a, b))
    guard("LCS 10k random ACGT vs difflib", difflib_seconds / ours, LCS_VS_DIFFLIB_FLOOR)


def test_lcs_of_two_million_characters_stays_within_its_reference_budget() -> None:
    rng = random.Random(11)
    a = lcs_bench.random_text(rng, 1_000_000)
    b = lcs_bench.random_text(rng, 1_000_000)
    numbers = np.random.default_rng(11).integers(0, 2**62, 2_000_000)
    longest_common_substring(a[:1000], b[:1000])
    ours = median_seconds(lambda: longest_common_substring(a, b), repeats=3)
    reference = median_seconds(lambda: np.argsort(numbers, kind="stable"), repeats=3)
    guard(
        "LCS 1M + 1M against a 2M-integer stable argsort",
        ours / reference,
        MILLION_VS_REFERENCE_CEILING,
        at_most=True,
    )


@pytest.fixture(scope="module")
def bench_broker() -> str:
    from tests.app.conftest import _require

    _require(5672, "RabbitMQ")
    from drills.local_services import private_vhost

    with private_vhost("bench-guard") as url:
        yield url


def items_per_second(broker_url: str, variant: throughput.Variant, items: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        environment = throughput.bench_environment(broker_url, Path(scratch))
        app = (
            throughput.platform_app(environment)
            if variant.platform
            else throughput.baseline_app(broker_url)
        )
        throughput.declare_queues(app)
        calls = throughput.calls_for(variant, items, chunk=100)
        throughput.publish_with_confirm_window(app, calls)
        result = throughput.drain(
            app,
            variant,
            len(calls),
            items,
            Path(environment[throughput.COMPLETIONS_ENV]),
            environment,
            broker_pids=[],
            timeout=120,
        )
        return result.items_per_second


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_chunks_keep_their_lead_over_one_task_per_item(bench_broker: str) -> None:
    per_item = throughput.Variant("per item", platform=True, chunked=False, prefetch=16)
    chunked = throughput.Variant("chunked", platform=True, chunked=True, prefetch=16)
    per_item_rate = items_per_second(bench_broker, per_item, 2_000)
    chunked_rate = items_per_second(bench_broker, chunked, 50_000)
    guard(
        "platform chunked by 100 vs one task per item (local broker)",
        chunked_rate / per_item_rate,
        CHUNKED_VS_PER_ITEM_FLOOR,
    )


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_platform_per_item_keeps_its_share_of_celerys_default_throughput(
    bench_broker: str,
) -> None:
    defaults = throughput.Variant("Celery defaults", platform=False, chunked=False)
    platform = throughput.Variant("platform", platform=True, chunked=False, prefetch=16)
    baseline_rate = items_per_second(bench_broker, defaults, 3_000)
    platform_rate = items_per_second(bench_broker, platform, 3_000)
    guard(
        "platform per item (prefetch 16) vs Celery's defaults (local broker)",
        platform_rate / baseline_rate,
        PLATFORM_VS_DEFAULTS_FLOOR,
    )


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_scheduler_window_keeps_its_lead_over_one_confirm_per_message(
    bench_broker: str,
) -> None:
    from app.celery_app import make_celery
    from app.publish_window import DEFAULT_WINDOW
    from app.settings import AppSettings

    celery = make_celery(AppSettings(broker_urls=(bench_broker,)))
    windows = (1, DEFAULT_WINDOW)
    rates = scheduler_bench.interleaved(
        lambda window: scheduler_bench.in_process_rate(
            celery, tasks=1500, window=window, publishers=4
        ),
        windows,
        repeats=3,
        after_run=lambda _window, _rate: scheduler_bench.queued_then_purged(bench_broker),
    )
    guard(
        f"scheduler --window {DEFAULT_WINDOW} vs --window 1 (local broker, median of 3)",
        statistics.median(scheduler_bench.ratios(rates, windows)),
        WINDOW_VS_ONE_CONFIRM_FLOOR,
    )


def test_a_failing_guard_names_the_figure_the_ratio_and_the_floor() -> None:
    with pytest.raises(AssertionError, match=r"LCS 10k: measured 42\.00x, floor 100\.00x"):
        guard("LCS 10k", 42.0, 100.0)
    with pytest.raises(AssertionError, match=r"1M: measured 7\.50x, ceiling 5\.00x"):
        guard("1M", 7.5, 5.0, at_most=True)
