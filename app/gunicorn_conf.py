"""Gunicorn settings for the web app.

Run: ``gunicorn --config python:app.gunicorn_conf 'app.web:create_app()'``.

Owns: how the web container serves HTTP (address, processes, timeouts, logs) and the start-up
check of every setting the web processes read. Does not own the app itself (``app.web``) or the
app's settings (``app.settings``, checked here exactly as the workers will read them).

Environment (all optional):

- ``WEB_HOST``: the address to listen on. Default ``127.0.0.1`` (this machine only), or
  ``0.0.0.0`` inside Kubernetes (``KUBERNETES_SERVICE_HOST`` is set in every pod), where the
  Service must reach the pod's IP. Set ``0.0.0.0`` yourself to serve other machines.
- ``PORT`` (default 8000) and ``WEB_CONCURRENCY`` (processes, default 2), the container
  contract.
- ``LOG_LEVEL``: gunicorn's log level, one of debug, info, warning, error, critical
  (default info).
- ``METRICS_PORT`` (default 9100, ``0`` switches it off) and ``METRICS_ADDRESS`` (default: the
  ``WEB_HOST`` address): the metrics listener of ``app.metrics``, served by the master;
  ``PROMETHEUS_MULTIPROC_DIR``: where the workers write their metrics (unset: a directory of this
  gunicorn's own, removed when it exits).

A bad value stops gunicorn before it listens, with one line (``invalid configuration: NAME:
...``) and exit status 2, like the worker, the scheduler and ``app.migrate``. Without this check
each worker process failed at boot and gunicorn started a new one, for ever, while listening.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

# Every worker writes its metrics here and the master sums them (app/metrics.py). Set before any
# worker imports prometheus_client, which picks its storage at import. Unset, each gunicorn gets
# its own directory (two on one machine must not sum or wipe each other's files), removed when
# it exits.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-metrics-")

from app import metrics  # noqa: E402 - after the directory: prometheus_client reads it at import
from app.settings import AppSettings, SettingsError  # noqa: E402

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOCAL_HOST = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only inside Kubernetes or when asked for
MAX_PROCESSES = 64
_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class WebServerSettings:
    """Where and how gunicorn serves, validated. Build it with :func:`web_server_settings`."""

    host: str = LOCAL_HOST
    port: int = 8000
    processes: int = 2
    log_level: str = "info"

    @property
    def bind(self) -> str:
        """gunicorn's ``bind``: ``host:port``, an IPv6 address in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def web_server_settings(environ: Mapping[str, str]) -> WebServerSettings:
    """Read ``WEB_HOST``, ``PORT``, ``WEB_CONCURRENCY`` and ``LOG_LEVEL`` (unset or empty means
    the default); raises SettingsError naming the variable, the value and the fix."""
    in_kubernetes = bool(environ.get("KUBERNETES_SERVICE_HOST", "").strip())
    host = environ.get("WEB_HOST", "").strip() or (ALL_INTERFACES if in_kubernetes
                                                    else LOCAL_HOST)
    if not _is_address(host):
        raise SettingsError(
            f"WEB_HOST: {host!r} is not an address to listen on; give {LOCAL_HOST} (this machine "
            f"only), {ALL_INTERFACES} (every interface) or another IP address or host name")
    port = _whole_number(environ, "PORT", 8000, 1, 65535, "a TCP port")
    processes = _whole_number(environ, "WEB_CONCURRENCY", 2, 1, MAX_PROCESSES,
                              "a number of web processes")
    log_level = environ.get("LOG_LEVEL", "").strip().lower() or "info"
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL: {environ['LOG_LEVEL']!r} is not a log level; give one of "
                            f"{', '.join(LOG_LEVELS)}")
    return WebServerSettings(host=host, port=port, processes=processes, log_level=log_level)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST_NAME.match(host)) and not host.replace(".", "").isdigit()
    return True


def _whole_number(environ: Mapping[str, str], name: str, default: int, low: int, high: int,
                  what: str) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise SettingsError(f"{name}: {raw!r} is not {what}; give a whole number between {low} "
                            f"and {high} (default {default})")
    return value


def check_environment(environ: Mapping[str, str]) -> WebServerSettings:
    """Every setting a web process reads, or exit 2 with one line (before gunicorn listens)."""
    try:
        # The app's settings too, read exactly as each web process will read them: a bad one
        # stops the master here instead of failing every worker process at boot.
        AppSettings.from_environ(environ)
        try:
            metrics.metrics_port(environ)
        except ValueError as error:
            raise SettingsError(str(error)) from None
        return web_server_settings(environ)
    except SettingsError as error:
        print(f"invalid configuration: {error}", file=sys.stderr)
        raise SystemExit(2) from None


_server = check_environment(os.environ)
# The metrics listener binds where the app does unless told otherwise.
os.environ.setdefault(metrics.METRICS_ADDRESS_ENV, _server.host)

bind = _server.bind
workers = _server.processes
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
loglevel = _server.log_level
# Recycle workers now and then so a slow leak can never take the pod down.
max_requests = 10_000
max_requests_jitter = 1_000
# gunicorn's control socket (for `gunicornc`) defaults to $HOME/.gunicorn/gunicorn.ctl: one path
# for every gunicorn of a user on a machine, and unwritable on the pod's read-only root
# filesystem. Nothing here uses gunicornc; Kubernetes scales by replicas.
control_socket_disable = True


def on_starting(server):
    metrics.gunicorn_on_starting(server)


def when_ready(server):
    metrics.gunicorn_when_ready(server)


def post_worker_init(worker):
    # Keep the dependency gauge current even when nobody loads the page (app.status).
    dependency_status = getattr(worker.wsgi, "extensions", {}).get("dependency_status")
    if dependency_status is not None:
        dependency_status.start_refreshing()


def child_exit(server, worker):
    metrics.gunicorn_child_exit(server, worker)


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
