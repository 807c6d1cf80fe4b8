"""The task benchmark publishes every variant through its own app, to its own vhost.

An unbound canvas (``chunks``, ``group``, ``chord``) silently publishes through Celery's
*default* app (``amqp://guest@localhost//``, vhost ``/``), where the benchmark's worker never
sees it. Here Celery's default app is replaced by a trap that records and refuses every
publish; each variant must land all of its messages in the benchmark's own queue instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, _state
from celery.canvas import chunks

from app.celery_app import make_celery
from app.settings import DEFAULT_QUEUE, AppSettings, task_queues
from bench import tasks as bench_tasks
from drills.local_services import private_vhost

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class DefaultAppTrap(Celery):
    """Celery's default app for the test: any publish through it is recorded and refused."""

    def __init__(self) -> None:
        super().__init__("default-app-trap", broker="memory://", set_as_current=False)
        self.published: list[str] = []

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.published.append(name)
        raise AssertionError(f"{name!r} was published through Celery's default app")

    def producer_or_acquire(self, producer: Any = None) -> Any:
        self.published.append("<producer>")
        raise AssertionError("a producer of Celery's default app was asked for")


@pytest.fixture
def default_app_trap(monkeypatch) -> Iterator[DefaultAppTrap]:
    trap = DefaultAppTrap()
    monkeypatch.setattr(_state, "default_app", trap)
    monkeypatch.setattr(_state._tls, "current_app", trap, raising=False)
    yield trap


@pytest.fixture
def bench_app() -> Iterator[Any]:
    with private_vhost("bench-test") as url:
        yield make_celery(AppSettings(broker_urls=(url,)))


def _ready(celery: Any) -> int:
    with celery.connection_for_write() as connection:
        return connection.default_channel.queue_declare(DEFAULT_QUEUE, passive=True).message_count


def _purge(celery: Any) -> None:
    with celery.connection_for_write() as connection:
        connection.default_channel.queue_purge(DEFAULT_QUEUE)


def test_the_trap_catches_an_unbound_chunks_signature(default_app_trap, bench_app):
    # The control: the benchmark's old code, which this test exists to catch.
    unbound = chunks(bench_app.signature("noop"), [(i,) for i in range(10)], 5)
    with pytest.raises(AssertionError, match="default app"):
        unbound.apply_async(queue=DEFAULT_QUEUE)
    assert default_app_trap.published


def test_every_variant_publishes_all_its_messages_to_the_benchmarks_own_queue(
        default_app_trap, bench_app):
    with bench_app.connection_for_write() as connection:
        for queue in task_queues():
            queue(connection.default_channel).declare()
    for variant in bench_tasks.variants(bench_app, items=40, batched_items=450, chunk_size=100):
        variant.publish()
        assert _ready(bench_app) == variant.messages, variant.name
        _purge(bench_app)
    assert default_app_trap.published == []


def test_the_benchmark_measures_every_variant_through_a_real_worker(default_app_trap, capsys):
    assert bench_tasks.main(["--items", "100", "--batched-items", "1000", "--chunk-size", "50",
                             "--runs", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith(("per item", "batched", "celery .chunks"))]
    assert [(row[-6], row[-5]) for row in rows] == [("100", "100"), ("1,000", "20"),
                                                    ("1,000", "20")]
    assert default_app_trap.published == []


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--items", "0", "0 is not positive: give 1 or more"),
    ("--runs", "three", "'three' is not a whole number")])
def test_a_bad_flag_is_named_before_anything_starts(flag, value, message, capsys):
    with pytest.raises(SystemExit) as caught:
        bench_tasks.main([flag, value])
    assert caught.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
