"""Dependency state: bounded, cached checks; the API answers 503 JSON (never 500, never a hang)
while PostgreSQL is unreachable, and the pod stays ready."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app import metrics, status
from app.settings import AppSettings
from app.web import create_app
from tests.app.conftest import free_port


def _state(name: str, up: bool) -> status.DependencyState:
    return status.DependencyState(name=name, up=up, seconds=0.0, detail="")


def test_checks_are_cached_so_page_loads_do_not_hammer_dependencies() -> None:
    now = [0.0]
    calls: list[str] = []

    def check() -> status.DependencyState:
        calls.append("db")
        return _state("database", up=len(calls) > 1)

    cached = status.DependencyStatus([check], cache_seconds=2.0, clock=lambda: now[0])
    assert cached.current().degraded
    for _ in range(50):
        cached.current()
    assert calls == ["db"]
    now[0] = 2.5
    assert not cached.current().degraded
    assert calls == ["db", "db"]


def test_a_slow_check_never_blocks_other_callers_once_an_answer_exists() -> None:
    now = [0.0]
    release = threading.Event()

    def slow_check() -> status.DependencyState:
        if now[0] > 0:
            release.wait(5)
        return _state("broker", up=True)

    cached = status.DependencyStatus([slow_check], cache_seconds=1.0, clock=lambda: now[0])
    cached.current()
    now[0] = 10.0
    checker = threading.Thread(target=cached.current)
    checker.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert not cached.current().degraded  # the stale answer, at once
    assert time.monotonic() - started < 0.5
    release.set()
    checker.join(5)


def test_each_check_sets_the_dependency_gauge() -> None:
    cached = status.DependencyStatus([lambda: _state("database", up=False)])
    cached.current()
    assert metrics.DEPENDENCY_UP.labels("database")._value.get() == 0
    cached = status.DependencyStatus([lambda: _state("database", up=True)])
    cached.current()
    assert metrics.DEPENDENCY_UP.labels("database")._value.get() == 1


def test_the_broker_check_reports_each_node_and_is_up_while_any_answers(broker_url: str) -> None:
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    state = status.check_broker([closed, broker_url])
    assert state.up
    assert sorted(state.nodes.values()) == [False, True]
    assert "1 of 2" in state.detail
    assert state.seconds < status.BROKER_CHECK_TIMEOUT_SECONDS + 0.5


@pytest.fixture
def unreachable_database_client(broker_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    # Real psycopg against a PostgreSQL port nothing listens on: what a killed server looks like.
    settings = AppSettings(
        broker_urls=(broker_url,),
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
    )
    return create_app(settings, publisher=lambda _job, _queue: None).test_client()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/jobs"),
        ("get", "/api/jobs/6b1a3f9e-0c1d-4d5e-8f00-000000000000"),
        ("post", "/api/jobs"),
    ],
)
def test_with_the_database_down_the_api_answers_503_json_within_2_s(
    unreachable_database_client, method: str, path: str
) -> None:
    client = unreachable_database_client
    started = time.monotonic()
    response = getattr(client, method)(path, json={"a": "abc", "b": "abd"})
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.is_json and response.get_json()["dependency"] == "database"
    assert response.headers["Retry-After"].isdigit()
    assert elapsed < 2.0


def test_with_the_database_down_the_pod_stays_ready_and_status_says_why(
    unreachable_database_client,
) -> None:
    client = unreachable_database_client
    assert client.get("/readyz").status_code == 200
    assert client.get("/").status_code == 200
    body = client.get("/api/status").get_json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["database"]["up"] is False
    assert "Connection refused" in body["dependencies"]["database"]["detail"]
    assert body["dependencies"]["broker"]["up"] is True
