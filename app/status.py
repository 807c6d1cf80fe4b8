"""Dependency state of the web app: is the broker reachable, is the database answering?

Owns: the checks behind ``GET /api/status`` (each bounded in time), the brief cache that keeps
page loads, probes and scrapes from hammering a struggling dependency, the background refresh
that keeps the ``hacelery_web_dependency_up`` gauge current when nobody loads the page, and the
JSON shape of the answer.

Why it is separate from readiness: ``/readyz`` says whether *this pod* can serve. The broker and
the database are shared by every pod, so a readiness probe that checked them took every web pod
out of the Service and the load balancer at once during a broker outage or a database restart:
the whole site answered the load balancer's 502, job list included. Dependency state is reported
here, shown on the page as a banner, exported as a metric and alerted on instead.

Does not own: what the API answers when a dependency fails during a request (``app.web``), the
publish's own bounds (``app.broker``), or the engine's pool and connect bounds (``app.db``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app import metrics
from app.broker import endpoint

log = logging.getLogger(__name__)

BROKER_CHECK_TIMEOUT_SECONDS = 0.8
"""Connect plus AMQP handshake per broker node; every node is checked in parallel, so the whole
broker check takes at most about this long."""
CACHE_SECONDS = 2.0
"""How long one check's answer is reused: page loads poll every few seconds and each web thread
may ask, but at most one check per process runs per interval."""
REFRESH_SECONDS = 15.0
"""Background refresh interval in each gunicorn worker: the gauge stays current for the alert
even when nobody loads the page (a scrape every 30 s sees at most one interval's lag)."""


@dataclass(frozen=True, kw_only=True)
class DependencyState:
    """One check of one dependency."""

    name: str
    up: bool
    seconds: float
    """How long the check took."""
    detail: str
    nodes: dict[str, bool] = field(default_factory=dict)
    """Broker only: each node of the failover list (``host:port``) and whether it answered."""

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "up": self.up,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }
        if self.nodes:
            answer["nodes"] = self.nodes
        return answer


@dataclass(frozen=True, kw_only=True)
class StatusReport:
    checked_at: float
    """``time.time()`` of the check."""
    dependencies: tuple[DependencyState, ...]

    @property
    def degraded(self) -> bool:
        return not all(dependency.up for dependency in self.dependencies)

    def as_json(self, *, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "status": "degraded" if self.degraded else "ok",
            "checked_seconds_ago": round(max(0.0, now - self.checked_at), 3),
            "dependencies": {d.name: d.as_json() for d in self.dependencies},
        }


def check_database(engine: Engine) -> DependencyState:
    """``SELECT 1`` through the app's engine (bounded by the engine's connect and pool timeouts,
    ``app.db``)."""
    started = time.monotonic()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return DependencyState(
            name="database", up=False, seconds=time.monotonic() - started,
            detail=f"{type(error).__name__}: {_first_line(error)}",
        )
    return DependencyState(
        name="database", up=True, seconds=time.monotonic() - started, detail="answering"
    )


def check_broker(
    urls: Sequence[str], *, timeout: float = BROKER_CHECK_TIMEOUT_SECONDS
) -> DependencyState:
    """Connect to every node of the failover list at once; up while any node completes the AMQP
    handshake (publishes fail over to it). Each node's result is reported, so two of three nodes
    down shows before the last one goes."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="broker-check") as pool:
        answers = list(pool.map(lambda url: _node_answers(url, timeout), urls))
    nodes = {f"{host}:{port}": ok for (host, port), (ok, _) in
             zip((endpoint(url) for url in urls), answers, strict=True)}
    reachable = sum(ok for ok, _ in answers)
    errors = [error for ok, error in answers if not ok]
    if reachable == len(urls):
        detail = f"all {len(urls)} node(s) answering"
    elif reachable:
        detail = f"{reachable} of {len(urls)} node(s) answering; last error: {errors[-1]}"
    else:
        detail = f"no node answering: {errors[-1]}"
    return DependencyState(
        name="broker", up=reachable > 0, seconds=time.monotonic() - started, detail=detail,
        nodes=nodes,
    )


def _node_answers(url: str, timeout: float) -> tuple[bool, str]:
    connection = Connection(url, connect_timeout=timeout, transport_options={
        "read_timeout": timeout, "write_timeout": timeout,
    })
    try:
        connection.ensure_connection(max_retries=0, timeout=timeout)
    except Exception as error:
        return False, f"{type(error).__name__}: {_first_line(error)}"
    finally:
        try:
            connection.collect()  # drop the socket without a polite close that could wait
        except Exception:
            log.debug("dropping the broker check connection failed", exc_info=True)
    return True, ""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


class DependencyStatus:
    """The cached state of the broker and the database for one web process.

    ``current()`` answers from the cache when it is younger than ``cache_seconds``; otherwise one
    caller runs the checks while concurrent callers get the previous answer (none waits behind
    another's check; only the very first caller of the process waits for a check).
    """

    def __init__(
        self,
        checks: Sequence[Callable[[], DependencyState]],
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = tuple(checks)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._report: StatusReport | None = None
        self._report_at = float("-inf")
        self._refresher: threading.Thread | None = None

    def current(self) -> StatusReport:
        with self._lock:
            report, fresh = self._report, self._clock() - self._report_at < self._cache_seconds
        if report is not None and fresh:
            return report
        if report is not None and not self._checking.acquire(blocking=False):
            return report  # someone else is checking right now: their answer comes shortly
        if report is None:
            self._checking.acquire()
        try:
            with self._lock:
                age = self._clock() - self._report_at
                if self._report is not None and age < self._cache_seconds:
                    return self._report
            return self._check_now()
        finally:
            self._checking.release()

    def _check_now(self) -> StatusReport:
        report = StatusReport(
            checked_at=time.time(), dependencies=tuple(check() for check in self._checks)
        )
        for dependency in report.dependencies:
            metrics.DEPENDENCY_UP.labels(dependency.name).set(1 if dependency.up else 0)
            if not dependency.up:
                log.warning("dependency %s is down: %s", dependency.name, dependency.detail)
        with self._lock:
            self._report, self._report_at = report, self._clock()
        return report

    def start_refreshing(self, interval: float = REFRESH_SECONDS) -> None:
        """Check every ``interval`` seconds from a daemon thread (gunicorn's post_worker_init)."""
        if self._refresher is not None:
            return

        def refresh() -> None:
            while True:
                try:
                    self.current()
                except Exception:
                    log.exception("dependency check failed")
                time.sleep(interval)

        self._refresher = threading.Thread(target=refresh, name="dependency-status", daemon=True)
        self._refresher.start()
