"""Gunicorn settings for the web app.

Run: ``gunicorn --config python:app.gunicorn_conf 'app.web:create_app()'``.

Owns: how the web container serves HTTP (address, processes, timeouts, logs). Does not own the
app itself (``app.web``). Reads ``PORT`` (default 8000) and ``WEB_CONCURRENCY`` (processes,
default 2) from the environment, as the container contract says.
"""

import os

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
