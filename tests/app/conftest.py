"""Fixtures for the workload's tests: throwaway databases, a private RabbitMQ vhost, real workers.

Isolation: every test session gets its own vhost on the shared broker and its own PostgreSQL
database, both named with a random suffix and removed at the end. Every process a fixture starts
runs in its own process group and is killed (TERM, then KILL) at teardown, even on failure.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drills.freezable_proxy import FreezableProxy
from drills.local_services import (
    app_environment,
    private_vhost,
    scratch_database,
    stop_process_group,
)

REPOSITORY = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _require(port: int, what: str) -> None:
    if not _port_open(port):
        pytest.fail(
            f"{what} is not listening on 127.0.0.1:{port}; run scripts/test-prerequisites.sh "
            "(./run test does)"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def proxy() -> Iterator[FreezableProxy]:
    """A relay in front of the local broker that can go silent (``freeze``) or die (``close``)."""
    with FreezableProxy((BROKER_HOST, BROKER_PORT)) as relay:
        yield relay


def through(proxy: FreezableProxy, url: str) -> str:
    """The same broker and vhost as ``url``, reached through the relay."""
    vhost = url.rsplit("/", 1)[1]
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    _require(5432, "PostgreSQL")
    with scratch_database("app_test") as url:
        yield url


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database without any schema (for migration tests)."""
    _require(5432, "PostgreSQL")
    with scratch_database("app_test_empty", migrate=False) as url:
        yield url


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """A private vhost on the local broker (guest has all rights on it), deleted at the end."""
    _require(BROKER_PORT, "RabbitMQ")
    with private_vhost("app-test") as url:
        yield url


@pytest.fixture
def service_environment(postgres_url: str, broker_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for processes of the app (worker, web, scheduler) in this test."""
    return app_environment(
        broker_url=broker_url,
        database_url=postgres_url,
        heartbeat_file=str(tmp_path / "worker-heartbeat"),
        repository=str(REPOSITORY),
        LCS_LARGE_THRESHOLD="1000",
    )


@dataclass
class Service:
    """A process started by a fixture, with its log file."""

    name: str
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pool_children(self) -> list[int]:
        """PIDs of the worker's pool processes (children of the main process)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start a command in its own process group, logging to a file; all are stopped at teardown."""
    services: list[Service] = []

    def start(
        name: str,
        command: list[str],
        environment: dict[str, str],
        *,
        ready_when: Callable[[Service], bool],
        timeout: float = 45.0,
    ) -> Service:
        log_path = tmp_path / f"{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        service = Service(name=name, process=process, log_path=log_path)
        services.append(service)
        deadline = time.monotonic() + timeout
        while not ready_when(service):
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{service.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready after {timeout} s:\n{service.log()}")
            time.sleep(0.1)
        return service

    yield start
    for service in reversed(services):
        stop_process_group(service.process)


@pytest.fixture
def start_worker(
    start_service: Callable[..., Service], service_environment: dict[str, str]
) -> Callable[..., Service]:
    """Start a real ``celery worker`` (prefork) consuming the given queues."""

    def start(queues: str, *, concurrency: int = 1, name: str | None = None) -> Service:
        hostname = name or queues.replace(",", "-")
        command = [
            str(VENV_BIN / "celery"),
            "--app",
            "app.celery_app",
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{hostname}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        return start_service(
            f"worker-{hostname}",
            command,
            service_environment,
            ready_when=lambda service: " ready." in service.log(),
        )

    return start
