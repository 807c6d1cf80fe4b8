"""The web app's Prometheus metrics, correct across gunicorn's worker processes.

Owns the metrics (requests by route, method and status; a latency histogram; requests in
progress; LCS jobs submitted per queue and rejected per reason; broker and database state as
``app.status`` last saw them), the Flask hooks that record them (``instrument(app)``: the only
line ``create_app`` needs), and their exposition.

Multi-process: gunicorn runs several worker processes, each with its own counters. They write
their values to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode)
and one endpoint sums them. That endpoint is served by the gunicorn *master* on its own port
(``METRICS_PORT``, 9100), not by a Flask route, because:
- the app port sits behind the public Ingress: a ``/metrics`` route there would publish traffic
  and error figures to the Internet; a separate port is reachable only where the NetworkPolicy
  admits the scraper;
- the master outlives every worker, so a scrape never lands on a worker busy with a 2 MB job.
The hooks for gunicorn (``on_starting``, ``when_ready``, ``child_exit``) live here and are wired
in ``app/gunicorn_conf.py``. Two production details prometheus-client leaves to the user:
- the directory is emptied when gunicorn starts (a pod's /tmp emptyDir survives container
  restarts; stale files would resurrect old counts); left unset, each gunicorn makes its own
  directory and removes it on exit (``app/gunicorn_conf.py``);
- a worker that exits (``max_requests`` recycles them) has its counter and histogram files
  merged into one archive file per type and removed, so the files - and the cost of a scrape -
  stay bounded however many workers come and go. The merge and every scrape hold the same lock,
  so no scrape sees a worker's counts twice or not at all.

Without gunicorn (tests, ``flask run``) the metrics live in the process and ``serve(port)`` or
``render()`` exposes them. Does not own which requests exist (``app.web``) or what is alerted on.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PORT_ENV = "METRICS_PORT"
METRICS_ADDRESS_ENV = "METRICS_ADDRESS"
"""Where the listener binds: all interfaces (the pod's own) unless set, e.g. 127.0.0.1 in drills."""
DEFAULT_METRICS_PORT = 9100

REQUESTS_TOTAL = "hacelery_web_requests_total"
REQUEST_DURATION = "hacelery_web_request_duration_seconds"
REQUESTS_IN_PROGRESS = "hacelery_web_requests_in_progress"
JOBS_SUBMITTED_TOTAL = "hacelery_jobs_submitted_total"
JOBS_REJECTED_TOTAL = "hacelery_jobs_rejected_total"
DEPENDENCY_UP_NAME = "hacelery_web_dependency_up"

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (scanners' random paths must not each become a
time series)."""
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SUBMIT_ENDPOINT = "submit_job"
# From 5 ms (a cached page) to 30 s (a 2 x 1M-character submission under load); the 1-2.5 s
# buckets resolve the p99 alert's 2 s threshold.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0)

# prometheus-client creates a file per metric as soon as an unlabelled one exists: the directory
# must be there before the first one below (gunicorn empties it again in on_starting).
if os.environ.get(MULTIPROC_DIR_ENV):
    os.makedirs(os.environ[MULTIPROC_DIR_ENV], exist_ok=True)

REQUESTS = Counter(
    REQUESTS_TOTAL.removesuffix("_total"),
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
DURATION = Histogram(
    REQUEST_DURATION,
    "Time from receiving a request to returning its response",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
IN_PROGRESS = Gauge(
    REQUESTS_IN_PROGRESS,
    "Requests being handled now",
    multiprocess_mode="livesum",
)
JOBS_SUBMITTED = Counter(
    JOBS_SUBMITTED_TOTAL.removesuffix("_total"),
    "LCS jobs accepted (stored and published), by queue",
    ["queue"],
)
JOBS_REJECTED = Counter(
    JOBS_REJECTED_TOTAL.removesuffix("_total"),
    "LCS job submissions not accepted: invalid_request (4xx) or queue_unavailable (503)",
    ["reason"],
)
DEPENDENCY_UP = Gauge(
    DEPENDENCY_UP_NAME,
    "1 while the web app reaches the dependency (broker: any node; database: SELECT 1), else 0; "
    "set by each check of app.status",
    ["dependency"],
    # The newest check of any live worker process: an old process' stale answer must not hide
    # an outage (or a recovery) another process just saw.
    multiprocess_mode="livemostrecent",
)


# ------------------------------------------------------------------------------ recording


def instrument(flask_app: Flask) -> Flask:
    """Record every request of ``flask_app``. Returns it, so ``create_app`` stays one line."""
    flask_app.before_request(_start)
    flask_app.after_request(_record)
    flask_app.teardown_request(_finish)
    return flask_app


def _start() -> None:
    g._metrics_started = time.perf_counter()
    g._metrics_in_progress = True
    IN_PROGRESS.inc()


def _record(response: Response) -> Response:
    started = g.get("_metrics_started")
    if started is None:
        return response
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED_ROUTE
    method = request.method if request.method in _METHODS else "OTHER"
    status = response.status_code
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(method, route).observe(time.perf_counter() - started)
    if request.endpoint == SUBMIT_ENDPOINT:
        _record_submission(response, status)
    return response


def _record_submission(response: Response, status: int) -> None:
    if status == 202:
        body = response.get_json(silent=True) or {}
        JOBS_SUBMITTED.labels(str(body.get("queue", "unknown"))).inc()
    elif status == 503:
        JOBS_REJECTED.labels("queue_unavailable").inc()
    elif 400 <= status < 500:
        JOBS_REJECTED.labels("invalid_request").inc()


def _finish(_error: BaseException | None) -> None:
    if g.pop("_metrics_in_progress", False):
        IN_PROGRESS.dec()


# ----------------------------------------------------------------------------- exposition

_COLLECT_LOCK = threading.Lock()
"""Held by every scrape and every archive merge (both run in the gunicorn master)."""


def multiproc_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_DIR_ENV)
    return Path(value) if value else None


class _LockedMultiProcessCollector(MultiProcessCollector):
    def collect(self):
        with _COLLECT_LOCK:
            return list(super().collect())


def registry() -> CollectorRegistry:
    """What to expose: the sum over every worker's files in multiprocess mode, else this
    process' own metrics."""
    directory = multiproc_dir()
    if directory is None:
        return REGISTRY
    collecting = CollectorRegistry()
    _LockedMultiProcessCollector(collecting, path=str(directory))
    return collecting


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - the pod's own port
    """Serve the metrics on ``port`` from a daemon thread of this process."""
    start_http_server(port, addr=address, registry=registry())


def metrics_port(environ: os._Environ | dict[str, str] = os.environ) -> int | None:
    """``METRICS_PORT`` (default 9100); ``0`` switches the listener off. Raises on a bad value."""
    raw = environ.get(METRICS_PORT_ENV, str(DEFAULT_METRICS_PORT)).strip()
    if not raw.isdigit() or not (int(raw) == 0 or 1024 <= int(raw) <= 65535):
        raise ValueError(
            f"{METRICS_PORT_ENV}: {raw!r} is not a port; use 1024-65535 (e.g. 9100), or 0 to "
            "switch the metrics listener off"
        )
    return int(raw) or None


# --------------------------------------------------------------------- gunicorn's master


def prepare_directory(directory: Path) -> None:
    """Empty (or create) the multiprocess directory before any worker writes to it."""
    if directory.exists():
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def archive_dead_process(pid: int, directory: Path | None = None) -> int:
    """Fold an exited worker's counters and histograms into the archive files; returns how
    many of its files were merged. Its live gauges are dropped (it is not in progress any more).
    """
    directory = directory or multiproc_dir()
    if directory is None:
        return 0
    merged = 0
    with _COLLECT_LOCK:
        mark_process_dead(pid, str(directory))
        for kind in ("counter", "histogram", "summary"):
            source = directory / f"{kind}_{pid}.db"
            if not source.exists():
                continue
            archive = MmapedDict(str(directory / f"{kind}_archive.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(source)):
                    total, _ = archive.read_value(key)
                    archive.write_value(key, total + value, timestamp)
            finally:
                archive.close()
            source.unlink()
            merged += 1
    return merged


def gunicorn_on_starting(_server) -> None:
    directory = multiproc_dir()
    if directory is not None:
        prepare_directory(directory)


def gunicorn_when_ready(_server) -> None:
    port = metrics_port()
    if port is None:
        return
    try:
        serve(port, os.environ.get(METRICS_ADDRESS_ENV) or "0.0.0.0")  # noqa: S104 - the pod's
    except OSError as error:
        # The app keeps serving: losing metrics must not take the site down. The scrape target
        # going missing raises MetricsTargetDown instead.
        log.error("metrics listener on port %d failed (%s); serving without metrics", port, error)
        return
    log.info("metrics on :%d/metrics (%d files)", port, len(_files()))


def gunicorn_child_exit(_server, worker) -> None:
    with contextlib.suppress(OSError):
        archive_dead_process(worker.pid)


def _files() -> list[str]:
    directory = multiproc_dir()
    return glob.glob(str(directory / "*.db")) if directory else []
