"""Scratch resources on this machine's own PostgreSQL and RabbitMQ, and process clean-up.

Shared by the app's integration tests, the Celery failover drill and the benchmarks, which all
need a fresh database (migrated by the app's own migrations), a private vhost on the local broker,
and worker processes that never outlive their run. Each is a context manager that removes what
it created, even when the body fails. Clients inside a network namespace reach the same
database through PostgreSQL's Unix socket (:func:`over_unix_socket`). Does not start the
services themselves (``scripts/prereq.d/10-services.sh`` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator

POSTGRES_ADMIN_URL = os.environ.get(
    "HACELERY_DRILL_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""A superuser connection to the local PostgreSQL (trust auth), used to create databases."""
BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672


class ServiceUnavailable(RuntimeError):
    """A local service the caller needs is not reachable; the message says how to start it."""


@contextlib.contextmanager
def scratch_database(
    prefix: str, *, migrate: bool = True, admin_url: str = POSTGRES_ADMIN_URL
) -> Iterator[str]:
    """A new database named ``<prefix>_<random>`` (migrated unless ``migrate=False``); yields
    its URL and drops it afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise ServiceUnavailable(
            f"PostgreSQL is not reachable at {admin_url} ({error}); start it with "
            "scripts/prereq.d/10-services.sh or set HACELERY_DRILL_POSTGRES"
        ) from None
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        if migrate:
            from app.migrate import upgrade
            from app.settings import AppSettings

            upgrade(AppSettings(database_url=url).sqlalchemy_url)
        yield url
    finally:
        from app.db import dispose_engines

        # Pooled connections would keep the database busy; FORCE ends any stragglers.
        dispose_engines(containing=name)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rabbitmqctl(*arguments: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "--quiet", *arguments], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def private_vhost(prefix: str) -> Iterator[str]:
    """A vhost on the local broker where `guest` has every right; yields its AMQP URL."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def stop_process_group(process: subprocess.Popen, *, grace: float = 5.0) -> None:
    """TERM the process's group (started with ``start_new_session=True``), wait up to ``grace``
    seconds, then KILL whatever is left: no worker or pool child outlives its run."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


POSTGRES_SOCKET_DIR = os.environ.get("HACELERY_DRILL_POSTGRES_SOCKET_DIR", "/var/run/postgresql")
"""Where the local PostgreSQL keeps its Unix socket."""


def over_unix_socket(url: str, socket_dir: str = POSTGRES_SOCKET_DIR) -> str:
    """The same database as ``url``, reached through PostgreSQL's Unix socket.

    A process inside a network namespace cannot reach this machine's 127.0.0.1, but a socket
    file is not tied to a network namespace: clients of a namespaced drill use this URL.
    Raises :class:`ServiceUnavailable` (with the fix) if the socket does not accept the user.
    """
    from urllib.parse import quote, urlsplit

    import psycopg

    parts = urlsplit(url)
    user = parts.username or "postgres"
    socket_url = f"postgresql://{quote(user)}@/{parts.path.lstrip('/')}?host={socket_dir}"
    try:
        with psycopg.connect(socket_url, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as error:
        raise ServiceUnavailable(
            f"PostgreSQL does not accept {user!r} on its Unix socket in {socket_dir} ({error}); "
            "allow it in pg_hba.conf (`local all all trust` on a test machine) or set "
            "HACELERY_DRILL_POSTGRES_SOCKET_DIR"
        ) from None
    return socket_url


APP_VARIABLE_PREFIXES = ("CELERY_", "DATABASE_", "LCS_", "RABBITMQ_", "ERL_")
"""Variables of this shell that must not leak into a process of the app started for a run."""


def app_environment(*, broker_url: str, database_url: str, heartbeat_file: str,
                    repository: str, **settings: str) -> dict[str, str]:
    """The environment of an app process (worker, web, scheduler) for a test or drill: this
    shell's variables without any of the app's own, then the given broker, database and
    ``settings`` (``LCS_LARGE_THRESHOLD="1000"``, ...)."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(APP_VARIABLE_PREFIXES)}
    environment.update(
        CELERY_BROKER_URL=broker_url,
        DATABASE_URL=database_url,
        CELERY_HEARTBEAT_FILE=heartbeat_file,
        CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT="2",
        PYTHONPATH=repository,
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return environment
