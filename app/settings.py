"""The workload's settings: environment -> validated ``AppSettings`` -> Celery's settings dict.

Owns: every environment variable the workload reads, its default, its validation, and the Celery
configuration chosen so that no accepted task is ever lost (each non-default setting says why).
:func:`celery_settings` is a pure function of a mapping, so the Kubernetes side, the local
drills and the tests all derive the same dict from the same inputs.

Does not own: the Celery app object (``app.celery_app``), database engines (``app.db``), or the
broker topology of the cluster (RabbitMQ's own config is generated under ``infra/``).

Environment variables (all optional; the broker URL is required in the cluster):

- ``CELERY_BROKER_URL``: an AMQP URL or a ``;``-separated failover list
  (default ``amqp://guest:guest@127.0.0.1:5672//``, the local broker).
- ``CELERY_BROKER_CA_FILE``: the CA certificate (PEM) that ``amqps://`` URLs verify the broker
  against (in the cluster: the stack's trust bundle, ``/etc/ha-celery/ca/ca.crt``); unset: the
  system's trusted CAs. Every ``amqps://`` connection requires a valid certificate whose names
  match the host of the URL it dials.
- ``DATABASE_URL``: ``postgresql://...`` (driven by psycopg 3) or ``sqlite:////path``
  (default ``sqlite:////tmp/ha-celery.sqlite3``, for a quick local run).
- ``LCS_LARGE_THRESHOLD``: ``len(a) + len(b)`` in characters above which an ``lcs`` job goes to
  the ``large`` queue (default 1000).
- ``LCS_MAX_INPUT_CHARS``: the API's limit per input string (default 1000000).
- ``CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT``: seconds running tasks may finish after SIGTERM before
  their messages are handed back (default 25.0; set just below terminationGracePeriodSeconds).
- ``CELERY_HEARTBEAT_FILE``: the file the worker touches for its liveness probe
  (default ``/tmp/celery-worker-heartbeat``).
- ``CELERY_RESULT_EXPIRES``: seconds chord results are kept (default 86400).

Broker time bounds (seconds; see ``app.broker`` for why each exists and what it bounds):

- ``CELERY_BROKER_HEARTBEAT``: AMQP heartbeat interval; a silent node is noticed after two
  missed intervals (default 5).
- ``CELERY_BROKER_CONNECT_TIMEOUT``: TCP connect and each handshake step, per URL (default 2).
- ``CELERY_BROKER_CONFIRM_TIMEOUT``: longest wait for one publisher confirm (default 5).
- ``CELERY_BROKER_SOCKET_TIMEOUT``: longest blocking socket read or write (default 5).
- ``CELERY_PUBLISH_TIMEOUT``: total time one publish of the sweeper or the bulk scheduler may
  take, failover included, before it answers "retry later" (default 8). A web submission uses
  at most 1.5 s of it (``app.web.SUBMIT_PUBLISH_BUDGET_SECONDS``) so a person gets an answer
  within 2 s.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue

from app.broker import BrokerBounds

DEFAULT_QUEUE = "default"
"""Queue of every task that is not routed elsewhere (count, record, noop, word count)."""
SMALL_QUEUE = "small"
"""LCS jobs whose total input is at most ``lcs_large_threshold`` characters."""
LARGE_QUEUE = "large"
"""LCS jobs above the threshold: long tasks on their own workers, so they never delay small ones."""
QUEUES = (DEFAULT_QUEUE, SMALL_QUEUE, LARGE_QUEUE)

TASK_EXCHANGE = "tasks"
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_DATABASE_URL = "sqlite:////tmp/ha-celery.sqlite3"
DEFAULT_HEARTBEAT_FILE = "/tmp/celery-worker-heartbeat"  # noqa: S108 - /tmp is the pod's emptyDir

_BROKER_SCHEMES = ("amqp", "amqps", "pyamqp")
_DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


def _split_broker_urls(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(";") if part.strip())


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """Validated settings of the workload. Build it with :meth:`from_environ`."""

    broker_urls: tuple[str, ...] = (DEFAULT_BROKER_URL,)
    """Failover list: the worker and the publishers move to the next URL when one fails."""
    broker_ca_file: str | None = None
    """CA certificate ``amqps://`` URLs verify the broker against; None: the system's CAs."""
    database_url: str = DEFAULT_DATABASE_URL
    lcs_large_threshold: int = 1000
    """``len(a) + len(b)`` (characters) above which an LCS job goes to the ``large`` queue."""
    lcs_max_input_chars: int = 1_000_000
    soft_shutdown_timeout: float = 25.0
    heartbeat_file: str = DEFAULT_HEARTBEAT_FILE
    result_expires: int = 86_400
    broker_bounds: BrokerBounds = field(default_factory=BrokerBounds)
    """How long any broker operation may wait (``app.broker``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Celery settings to override last (tests use it for e.g. a shorter heartbeat)."""

    def __post_init__(self) -> None:
        if not self.broker_urls:
            raise SettingsError(
                "CELERY_BROKER_URL: empty; give amqp://user:password@host:5672/vhost, or several "
                "separated by ';' for failover"
            )
        for url in self.broker_urls:
            parts = urlsplit(url)
            if parts.scheme not in _BROKER_SCHEMES or not parts.hostname:
                raise SettingsError(
                    f"CELERY_BROKER_URL: {_redact(url)!r} is not an AMQP URL; use "
                    "amqp://user:password@host:5672/vhost (schemes: "
                    f"{', '.join(_BROKER_SCHEMES)}), several separated by ';'"
                )
        schemes = {urlsplit(url).scheme for url in self.broker_urls}
        if "amqps" in schemes and schemes != {"amqps"}:
            raise SettingsError(
                "CELERY_BROKER_URL: mixes amqps:// with plain URLs; a failover list must be all "
                "amqps:// (one plaintext node would send the password in clear)"
            )
        if self.broker_ca_file is not None and not self.broker_ca_file.startswith("/"):
            raise SettingsError(
                f"CELERY_BROKER_CA_FILE: {self.broker_ca_file!r} must be an absolute path "
                "(e.g. /etc/ha-celery/ca/ca.crt)"
            )
        scheme = urlsplit(self.database_url).scheme.split("+", 1)[0]
        if scheme not in _DATABASE_SCHEMES:
            raise SettingsError(
                f"DATABASE_URL: {_redact(self.database_url)!r} is not supported; use "
                "postgresql://user:password@host:5432/dbname (or sqlite:////path/file.sqlite3 "
                "for a local run)"
            )
        _require_int_range("LCS_LARGE_THRESHOLD", self.lcs_large_threshold, 1, None)
        _require_int_range("LCS_MAX_INPUT_CHARS", self.lcs_max_input_chars, 1, 50_000_000)
        if not (
            isinstance(self.soft_shutdown_timeout, int | float)
            and math.isfinite(self.soft_shutdown_timeout)
            and 0 <= self.soft_shutdown_timeout <= 3600
        ):
            raise SettingsError(
                "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT: "
                f"{self.soft_shutdown_timeout!r} is not allowed; give seconds between 0 and 3600 "
                "(just below the pod's terminationGracePeriodSeconds)"
            )
        if not self.heartbeat_file.startswith("/"):
            raise SettingsError(
                f"CELERY_HEARTBEAT_FILE: {self.heartbeat_file!r} must be an absolute path "
                "(e.g. /tmp/celery-worker-heartbeat)"
            )
        _require_int_range("CELERY_RESULT_EXPIRES", self.result_expires, 60, None)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AppSettings:
        """Read the variables in this module's docstring; unset or empty means the default."""
        values: dict[str, Any] = {}
        if environ.get("CELERY_BROKER_URL", "").strip():
            values["broker_urls"] = _split_broker_urls(environ["CELERY_BROKER_URL"])
        if environ.get("CELERY_BROKER_CA_FILE", "").strip():
            values["broker_ca_file"] = environ["CELERY_BROKER_CA_FILE"].strip()
        if environ.get("DATABASE_URL", "").strip():
            values["database_url"] = environ["DATABASE_URL"].strip()
        for name, attribute in (
            ("LCS_LARGE_THRESHOLD", "lcs_large_threshold"),
            ("LCS_MAX_INPUT_CHARS", "lcs_max_input_chars"),
            ("CELERY_RESULT_EXPIRES", "result_expires"),
        ):
            if environ.get(name, "").strip():
                values[attribute] = _parse_int(name, environ[name])
        if environ.get("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "").strip():
            raw = environ["CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"].strip()
            try:
                values["soft_shutdown_timeout"] = float(raw)
            except ValueError:
                raise SettingsError(
                    f"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT: {raw!r} is not a number of seconds "
                    "(e.g. 25 or 25.5)"
                ) from None
        if environ.get("CELERY_HEARTBEAT_FILE", "").strip():
            values["heartbeat_file"] = environ["CELERY_HEARTBEAT_FILE"].strip()
        bounds = {
            attribute: _parse_seconds(name, environ[name])
            for name, attribute in _BOUND_VARIABLES.items()
            if environ.get(name, "").strip()
        }
        if bounds:
            try:
                values["broker_bounds"] = BrokerBounds(**bounds)
            except ValueError as error:
                attribute = str(error).split(":", 1)[0]
                name = next(n for n, a in _BOUND_VARIABLES.items() if a == attribute)
                raise SettingsError(f"{name}: {str(error).split(': ', 1)[1]}") from None
        return cls(**values)

    @property
    def broker_url(self) -> str:
        """The failover list in the form kombu takes (``;``-separated)."""
        return ";".join(self.broker_urls)

    @property
    def broker_uses_tls(self) -> bool:
        return all(urlsplit(url).scheme == "amqps" for url in self.broker_urls)

    def broker_ssl_options(self) -> dict[str, Any] | None:
        """kombu's ``ssl`` options for ``amqps://`` URLs (None for plain ``amqp://``).

        ``server_hostname: None`` makes kombu check the certificate against the host of the URL
        it dials (and send it as SNI). kombu writes the first host into this dict, so after a
        failover the next node is checked against the first node's name: the stack issues one
        certificate naming every node, so verification still holds (noted in the README)."""
        if not self.broker_uses_tls:
            return None
        options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
        if self.broker_ca_file is not None:
            options["ca_certs"] = self.broker_ca_file
        return options

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL with the driver made explicit: psycopg 3 for PostgreSQL."""
        scheme, rest = self.database_url.split("://", 1)
        base = scheme.split("+", 1)[0]
        if base in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        return f"{scheme}://{rest}"

    def queue_for_lcs(self, a_length: int, b_length: int) -> str:
        """The routing rule for LCS jobs: total characters against the threshold."""
        return LARGE_QUEUE if a_length + b_length > self.lcs_large_threshold else SMALL_QUEUE


_BOUND_VARIABLES = {
    "CELERY_BROKER_HEARTBEAT": "heartbeat",
    "CELERY_BROKER_CONNECT_TIMEOUT": "connect_timeout",
    "CELERY_BROKER_CONFIRM_TIMEOUT": "confirm_timeout",
    "CELERY_BROKER_SOCKET_TIMEOUT": "socket_timeout",
    "CELERY_PUBLISH_TIMEOUT": "publish_budget",
}
"""Environment variable -> :class:`~app.broker.BrokerBounds` field."""


def _parse_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number of seconds (e.g. 5 or 2.5)") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}: {raw!r} is not a number of seconds (e.g. 5 or 2.5)")
    return value


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number (e.g. 1000)") from None


def _require_int_range(name: str, value: object, low: int, high: int | None) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise SettingsError(f"{name}: {value!r} is not allowed; give a whole number {allowed}")


def _redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def task_queues() -> tuple[Queue, ...]:
    """The three quorum queues, bound to one topic exchange by their own name."""
    # A topic exchange (not Celery's default direct one): Celery's native delayed delivery for
    # quorum queues (countdown/ETA, chord_unlock retries) binds its delay queues to it; with a
    # direct exchange a countdown held the worker for the whole delay (measured here).
    exchange = Exchange(TASK_EXCHANGE, type="topic", durable=True)
    return tuple(
        Queue(
            name,
            exchange,
            routing_key=name,
            durable=True,
            # Quorum queues are replicated by Raft across the 3 RabbitMQ nodes and survive the
            # loss of a minority; classic mirroring no longer exists in RabbitMQ 4.
            queue_arguments={"x-queue-type": "quorum"},
        )
        for name in QUEUES
    )


def celery_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Celery's settings for this environment (pure: reads only ``environ``)."""
    settings = AppSettings.from_environ(environ)
    return celery_settings_for(settings)


def celery_settings_for(settings: AppSettings) -> dict[str, Any]:
    """Celery's settings from already-validated :class:`AppSettings`."""
    bounds = settings.broker_bounds
    config: dict[str, Any] = {
        # --- broker --------------------------------------------------------------------------
        # kombu accepts a ';'-separated list and fails over to the next URL in order.
        "broker_url": settings.broker_url,
        # amqps:// URLs: the server's certificate must verify against the stack's CA and match
        # the host dialled; a broker that cannot prove its name gets neither password nor task.
        "broker_use_ssl": settings.broker_ssl_options() or False,
        # Publisher confirms on every connection, and a bound on every blocking socket read and
        # write, TCP liveness for a peer that vanished (app.broker.BrokerBounds says why).
        "broker_transport_options": bounds.transport_options(),
        # round-robin (kombu's default, stated): after a failure the next URL of the list, each
        # tried once per cycle; kombu sleeps only after a whole cycle failed, so a dead first
        # node costs one refused connect (~1 ms), not a back-off.
        "broker_failover_strategy": "round-robin",
        # AMQP heartbeats every 5 s (Celery's default 120): a killed process's socket is reset
        # at once, but a node that went silent (a frozen or vanished machine: no RST) is only
        # noticed after two missed heartbeats: ~10 s instead of ~4 minutes. Checked every
        # second (5 checks per interval), so detection is not delayed by the check period.
        # Cost: one tiny frame per second per worker connection; the prefork worker's main
        # process (which answers them) never runs task code. A worker never waits on a confirm
        # in its event loop (app.bootsteps), so the check always runs.
        "broker_heartbeat": bounds.heartbeat,
        "broker_heartbeat_checkrate": bounds.heartbeat_checks_per_interval,
        # At start-up the broker may still be forming its cluster: keep retrying instead of
        # exiting (Celery 6 stops doing this by default).
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        # Never give up reconnecting a running worker: Kubernetes, not a retry budget, decides
        # when a worker is unhealthy (its liveness probe does not depend on the broker).
        "broker_connection_max_retries": None,
        # Connect timeout per URL and handshake step (default 4 s): an unreachable (not
        # refusing) or frozen node costs this much before the next URL is tried. A handshake
        # inside the cluster network takes milliseconds; 2 s still tolerates a loaded broker.
        # The worker reconnects starting after the node that failed (app.bootsteps).
        "broker_connection_timeout": bounds.connect_timeout,
        "broker_channel_error_retry": True,
        # --- queues and routing --------------------------------------------------------------
        "task_queues": task_queues(),
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_exchange": TASK_EXCHANGE,
        "task_default_routing_key": DEFAULT_QUEUE,
        # Quorum queues need Celery >= 5.5 (5.4 loops on global QoS); these make every queue
        # Celery declares by itself quorum too, and enable native delayed delivery.
        "task_default_queue_type": "quorum",
        "task_default_exchange_type": "topic",
        "worker_detect_quorum_queues": True,
        # Celery's consumer with its native-delayed-delivery start-up step replaced: Celery's
        # own step connects to EVERY URL of the failover list on each reconnect and retries the
        # dead one (1+3+5 s sleeps), which stalled consumption ~18 s after a node kill. Ours
        # declares the (cluster-wide) topology through the connection the consumer holds.
        "worker_consumer": "app.bootsteps:FailoverConsumer",
        # Queues are declared from task_queues only: a typo in a queue name fails loudly instead
        # of creating a queue nobody consumes.
        "task_create_missing_queues": False,
        # --- no lost work --------------------------------------------------------------------
        # Late acks: a message is acknowledged after the task returns, so a crash mid-task
        # leaves it on the queue for another worker. Tasks are therefore written idempotent.
        "task_acks_late": True,
        # ...and if the pool process dies (OOM kill, SIGKILL), requeue the message instead of
        # acknowledging it as failed; without this the task was lost in our drill.
        "task_reject_on_worker_lost": True,
        # Each pool process reserves one message at a time: nothing sits unacknowledged behind
        # a long task, and a lost worker hands back at most `concurrency` messages.
        "worker_prefetch_multiplier": 1,
        # A worker that loses its broker connection stops the tasks it was running: their
        # messages are redelivered elsewhere anyway, so finishing them would only duplicate work.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Retry a publish that fails on a connection error (the failover list is tried) before
        # the caller sees an error: each attempt is bounded (BoundedAMQP), and so is the count.
        # The web app and the sweeper publish through app.broker.TaskPublisher instead, which
        # also bounds the total time.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        # --- graceful shutdown ---------------------------------------------------------------
        # On SIGTERM the worker stops consuming, lets running tasks finish for this long, then
        # hands unfinished messages back (requeue) before the pod's grace period runs out.
        "worker_soft_shutdown_timeout": settings.soft_shutdown_timeout,
        "worker_enable_soft_shutdown_on_idle": True,
        # --- results -------------------------------------------------------------------------
        # Tasks store their own outcomes in the database (idempotently, keyed by id); Celery's
        # result backend only carries chord parts, which opt in with ignore_result=False.
        "task_ignore_result": True,
        "result_backend": f"db+{settings.sqlalchemy_url}",
        "database_engine_options": {"pool_pre_ping": True},
        "database_create_tables_at_setup": True,
        "result_expires": settings.result_expires,
        "result_extended": False,
        "result_chord_join_timeout": 30.0,
        # --- safety and monitoring -----------------------------------------------------------
        # JSON only: a pickle message from anyone who can publish would be code execution.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_track_started": False,
        # Task events cost three extra messages per task (434 vs 708 no-op tasks/s measured
        # here), so they are off until someone watches: Flower turns them on at run time with
        # the enable_events control command (its default), and they stop with the workers.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
        "timezone": "UTC",
    }
    config.update(settings.extra)
    return config
