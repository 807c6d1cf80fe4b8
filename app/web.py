"""The web app: submit LCS jobs, watch them run. ``gunicorn ... 'app.web:create_app()'``.

Owns: HTTP. The page at ``/`` (own static JS/CSS, no CDN), the JSON API, the probes:

- ``POST /api/jobs`` with ``{"a": str, "b": str}`` -> 202 ``{"id", "queue", "status_url"}``
- ``GET /api/jobs`` (newest first, ``?limit=1..200``), ``GET /api/jobs/<id>`` (full job)
- ``GET /healthz``: the process serves requests; ``GET /readyz``: this pod can serve (it
  never checks the broker or the database: see ``app.status`` for why)
- ``GET /api/status``: broker (per node) and database state, each check bounded and cached for
  ``app.status.CACHE_SECONDS``; 200 either way, ``"status": "ok" | "degraded"``

Every error is a JSON body ``{"error": message}`` with a 4xx status naming the problem (any
bytes, however malformed or deeply nested, get one), or 503 (with ``Retry-After``) when a
dependency is down or the database has no schema yet (naming ``python -m app.migrate``), never a
500 for an outage: the engine's connect and pool waits are bounded (``app.db``), so with the
database gone every API call answers 503 within about 2 s; a
rejected request stores nothing (see ``app.jobs`` for the order of writes when the broker fails
after the row was written). A submission never waits on a silent broker node: the publish has a
total budget (``CELERY_PUBLISH_TIMEOUT``, failover included, ``app.broker.TaskPublisher``), and a
publish that was written but not confirmed in time answers 503 naming the job, which stays
``pending`` for the sweeper.

Does not own: validation rules and storage (``app.jobs``), settings (``app.settings``).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from flask import Flask, jsonify, render_template, request, url_for
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app import jobs, metrics, status
from app.broker import PublishUnconfirmed, TaskCall, TaskPublisher
from app.celery_app import HaCelery, make_celery
from app.db import engine_for
from app.settings import AppSettings

log = logging.getLogger(__name__)

# A submission while no broker node accepts connections answers 503 after this long instead of
# spending the whole publish budget (8 s) waiting for a node to come back: the page and API
# clients retry after Retry-After anyway. Nodes that accept connections but do not confirm (a
# silent node, a leader election) still get the whole budget (app.broker.TaskPublisher).
SUBMIT_GIVE_UP_WHEN_UNREACHABLE_SECONDS = 1.0
# A submission's whole publish, failover included, takes at most this long (or the app's
# CELERY_PUBLISH_TIMEOUT if that is lower), so a person gets an answer within 2 s during any
# broker trouble (issue 14). A message written but not confirmed by then keeps its job pending
# for the sweeper (a 503 naming the job), so a silent node costs a retry, never the job.
SUBMIT_PUBLISH_BUDGET_SECONDS = 1.5
# Clients should wait this long before submitting again after a 503: about the time a silent
# broker node takes to be noticed and left (two heartbeats), when publishes go elsewhere.
RETRY_AFTER_SECONDS = 10


def celery_publisher(
    celery: HaCelery,
    *,
    give_up_when_unreachable: float | None = None,
    budget: float | None = None,
) -> jobs.Publisher:
    """Publish the ``lcs`` task by name; the job id doubles as the task id for tracing.

    Each publish borrows a pooled connection and has a total budget, failover included
    (``app.broker.TaskPublisher``); a message written but not confirmed in time is reported as
    :class:`jobs.PublishUncertain` so its row stays for the sweeper.
    """
    publisher = TaskPublisher(
        celery, give_up_when_unreachable=give_up_when_unreachable, budget=budget
    )

    def publish(job_id: str, queue: str) -> None:
        try:
            publisher.publish(TaskCall(name="lcs", args=(job_id,), queue=queue, task_id=job_id))
        except PublishUnconfirmed as error:
            raise jobs.PublishUncertain(str(error)) from error

    return publish


def schema_missing(error: DBAPIError) -> bool:
    """The statement failed because the app's tables do not exist (migrations never ran)."""
    import psycopg

    original = error.orig
    if isinstance(original, psycopg.errors.UndefinedTable):
        return True
    return "no such table" in str(original)  # SQLite


def create_app(
    settings: AppSettings | None = None,
    *,
    celery: HaCelery | None = None,
    publisher: jobs.Publisher | None = None,
) -> Flask:
    """Build the Flask app. Everything defaults to what the environment configures."""
    if settings is None:
        settings = AppSettings.from_environ(os.environ)
    if celery is None:
        celery = make_celery(settings)
    if publisher is None:
        publisher = celery_publisher(
            celery,
            give_up_when_unreachable=SUBMIT_GIVE_UP_WHEN_UNREACHABLE_SECONDS,
            budget=min(SUBMIT_PUBLISH_BUDGET_SECONDS, settings.broker_bounds.publish_budget),
        )
    engine = engine_for(settings.sqlalchemy_url)
    dependency_status = status.DependencyStatus([
        lambda: status.check_broker(settings.broker_urls),
        lambda: status.check_database(engine),
    ])

    flask_app = metrics.instrument(Flask(__name__))
    # UTF-8 JSON can take up to 12 bytes per character (a \\uXXXX\\uXXXX pair): bound the body
    # so an oversized upload is refused with 413 before it is read into memory.
    flask_app.config["MAX_CONTENT_LENGTH"] = 2 * settings.lcs_max_input_chars * 12 + 64 * 1024
    flask_app.json.ensure_ascii = False  # type: ignore[attr-defined]
    # gunicorn's post_worker_init starts its background refresh (app/gunicorn_conf.py).
    flask_app.extensions["dependency_status"] = dependency_status
    retry_after = {"Retry-After": str(RETRY_AFTER_SECONDS)}

    @flask_app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        message = error.description or error.name
        if error.code == 413:
            message = (
                "the request body is too large; each input may have at most "
                f"{settings.lcs_max_input_chars} characters (LCS_MAX_INPUT_CHARS)"
            )
        elif error.code == 400 and request.is_json:
            message = f"the request body is not valid JSON: {error.description}"
        return jsonify(error=message), error.code

    @flask_app.errorhandler(ProgrammingError)
    @flask_app.errorhandler(OperationalError)
    @flask_app.errorhandler(InterfaceError)
    @flask_app.errorhandler(PoolTimeout)
    def _database_error(error: Exception) -> Any:
        if isinstance(error, DBAPIError) and schema_missing(error):
            log.error("the database has no schema: %s", error.orig)
            return jsonify(
                error="the database schema is missing or out of date; run "
                "`python -m app.migrate` against DATABASE_URL"
            ), 503
        if isinstance(error, ProgrammingError):
            return _unexpected_error(error)
        # Connection refused or lost, connect timeout, pool exhausted: the database is down or
        # restarting. Every write is one transaction, so nothing half-done was stored.
        log.warning("database unavailable on %s %s: %s", request.method, request.path,
                    str(error).splitlines()[0] if str(error) else type(error).__name__)
        return jsonify(
            error="the database is unavailable; nothing was stored, retry later",
            dependency="database",
        ), 503, retry_after

    @flask_app.errorhandler(Exception)
    def _unexpected_error(error: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal error; see the server log"), 500

    @flask_app.get("/")
    def index() -> Any:
        return render_template(
            "index.html",
            max_chars=settings.lcs_max_input_chars,
            large_threshold=settings.lcs_large_threshold,
        )

    @flask_app.post("/api/jobs")
    def submit_job() -> Any:
        if not request.is_json:
            return jsonify(
                error="send the job as JSON with Content-Type: application/json, "
                'e.g. {"a": "...", "b": "..."}'
            ), 415
        try:
            payload = request.get_json()  # invalid JSON raises 400, answered as JSON above
        except RecursionError:
            # The JSON decoder recurses per nesting level; a body nested a few thousand deep
            # exhausts the stack. A job is one flat object, so say that.
            return jsonify(
                error='the request body is nested too deeply; send one flat JSON object like '
                '{"a": "...", "b": "..."}'
            ), 400
        try:
            job_input = jobs.parse_lcs_input(payload, max_chars=settings.lcs_max_input_chars)
        except jobs.InputError as error:
            return jsonify(error=str(error), field=error.field), 422
        try:
            job_id, queue = jobs.create_lcs_job(engine, settings, job_input, publisher)
        except jobs.JobNotConfirmed as error:
            log.warning("job %s not confirmed, left for the sweeper: %s", error.job_id, error)
            status_url = url_for("show_job", job_id=error.job_id)
            return jsonify(
                error="the task queue did not confirm the job in time; it is kept as pending "
                "and will be queued again automatically: follow status_url instead of "
                "submitting it again",
                id=error.job_id,
                queue=error.queue,
                status_url=status_url,
            ), 503, retry_after
        except jobs.EnqueueError as error:
            log.warning("job not accepted: %s", error)
            return jsonify(
                error="the task queue is unavailable; nothing was stored, retry",
                dependency="broker",
            ), 503, retry_after
        status_url = url_for("show_job", job_id=job_id)
        return jsonify(id=job_id, queue=queue, status_url=status_url), 202, {"Location": status_url}

    @flask_app.get("/api/jobs")
    def list_jobs() -> Any:
        raw_limit = request.args.get("limit", "50")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1
        if not 1 <= limit <= 200:
            return jsonify(error=f"limit must be a whole number 1..200, got {raw_limit!r}"), 400
        return jsonify(jobs=jobs.list_jobs(engine, limit=limit))

    @flask_app.get("/api/jobs/<job_id>")
    def show_job(job_id: str) -> Any:
        try:
            canonical = str(uuid.UUID(job_id))
        except ValueError:
            return jsonify(error=f"{job_id!r} is not a job id (a UUID)"), 404
        job = jobs.get_job(engine, canonical)
        if job is None:
            return jsonify(error=f"no job {canonical}"), 404
        return jsonify(job)

    @flask_app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @flask_app.get("/readyz")
    def readyz() -> Any:
        # This process answers requests, so this pod can serve: the page, and reads while only
        # the broker is down. Shared dependencies are reported by /api/status, never here.
        return jsonify(status="ready")

    @flask_app.get("/api/status")
    def dependency_state() -> Any:
        return jsonify(dependency_status.current().as_json())

    return flask_app
