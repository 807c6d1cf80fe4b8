"""The Celery application: ``celery --app app.celery_app worker|flower ...``.

Owns: building a Celery app from :class:`~app.settings.AppSettings` (:func:`make_celery`), the
module-level app the worker CLI loads (configured from the environment; a bad setting stops the
process at start with the message), the worker's liveness heartbeat, and the per-process
database hygiene of prefork pool children.

Does not own: the settings themselves (``app.settings``) or the tasks (``app.tasks``).

Worker liveness: a bootstep starts a thread in the worker's main process that touches
``CELERY_HEARTBEAT_FILE`` every ``HEARTBEAT_INTERVAL_SECONDS``. It runs while every pool process
is busy with a long task and while the broker is unreachable (reconnecting is the worker's job;
restarting the pod would not help), and it stops when the worker stops.
``python -m app.healthcheck worker --max-age 60`` checks the file's age.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_process_init

from app.db import dispose_engines_after_fork, engine_for
from app.settings import AppSettings, SettingsError, celery_settings_for

HEARTBEAT_INTERVAL_SECONDS = 10.0
log = logging.getLogger(__name__)


class HeartbeatFile(bootsteps.StartStopStep):
    """Touches the heartbeat file from the worker's main process, independent of pool and broker."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.path = Path(worker.app.app_settings.heartbeat_file)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        self._stopped.clear()
        self._touch()
        self._thread = threading.Thread(target=self._run, name="heartbeat-file", daemon=True)
        self._thread.start()

    def stop(self, worker: Any) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        # A stopped worker is not alive: make the probe fail rather than trust a fresh file.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _run(self) -> None:
        while not self._stopped.wait(HEARTBEAT_INTERVAL_SECONDS):
            self._touch()

    def _touch(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError as error:  # a full or read-only /tmp must not kill the worker itself
            log.warning("cannot touch heartbeat file %s: %s", self.path, error)


class HaCelery(Celery):
    """A Celery app that carries the validated settings it was built from."""

    # Every task publish waits a bounded time for its confirm (app.broker).
    amqp_cls = "app.broker:BoundedAMQP"
    app_settings: AppSettings

    def engine(self):  # type: ignore[no-untyped-def]
        """This process's database engine for the app's DATABASE_URL."""
        return engine_for(self.app_settings.sqlalchemy_url)


def make_celery(settings: AppSettings) -> HaCelery:
    """A configured app; tasks are registered from ``app.tasks`` when the worker starts."""
    celery = HaCelery("ha_celery", include=["app.tasks"], set_as_current=False)
    celery.app_settings = settings
    celery.config_from_object(celery_settings_for(settings))
    celery.steps["worker"].add(HeartbeatFile)
    return celery


@worker_process_init.connect
def _fresh_database_connections(**_kwargs: Any) -> None:
    # A forked pool child must not reuse the parent's database sockets.
    dispose_engines_after_fork()


def _app_from_environment() -> HaCelery:
    try:
        return make_celery(AppSettings.from_environ(os.environ))
    except SettingsError as error:
        # Fail at start with one clear line instead of a traceback, before touching the broker.
        print(f"invalid configuration: {error}", file=sys.stderr)
        raise SystemExit(2) from None


celery = _app_from_environment()
# The worker CLI looks the app up by these names.
app = celery
