"""Gunicorn settings for the web app.

Run: ``gunicorn --config python:app.gunicorn_conf 'app.web:create_app()'``.

Owns: how the web container serves HTTP (address, processes, timeouts, logs). Does not own the
app itself (``app.web``) or its metrics (``app.metrics``, whose gunicorn hooks are wired below).
Reads ``PORT`` (default 8000), ``WEB_CONCURRENCY`` (processes, default 2) and ``METRICS_PORT``
(default 9100, 0 switches it off) from the environment, as the container contract says.
"""

import os
import shutil
import tempfile

# Every worker writes its metrics here and the master sums them (app/metrics.py). Set before any
# worker imports prometheus_client, which picks its storage at import. Unset, each gunicorn gets
# its own directory (two on one machine must not sum or wipe each other's files), removed when
# it exits.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-metrics-")

from app import metrics  # noqa: E402 - after the directory: prometheus_client reads it at import

# Checked at start: a bad METRICS_PORT stops gunicorn with one line instead of a silent gap.
metrics.metrics_port()

bind = f"0.0.0.0:{int(os.environ.get('PORT', '8000'))}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads: requests mostly wait on PostgreSQL and on publisher confirms, not on the CPU.
worker_class = "gthread"
threads = 4
# Above the worst case of a submission (a 2 x 1M character insert plus bounded publish retries)
# so a slow but healthy request is not killed mid-transaction.
timeout = 60
# Kubernetes sends SIGTERM and waits terminationGracePeriodSeconds: finish in-flight requests.
graceful_timeout = 20
keepalive = 5
# The root filesystem is read-only; /tmp is the pod's emptyDir (a memory-backed one works best).
worker_tmp_dir = "/tmp"  # noqa: S108
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Recycle workers now and then so a slow leak can never take the pod down.
max_requests = 10_000
max_requests_jitter = 1_000


def on_starting(server):
    metrics.gunicorn_on_starting(server)


def when_ready(server):
    metrics.gunicorn_when_ready(server)


def child_exit(server, worker):
    metrics.gunicorn_child_exit(server, worker)


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
