"""The HTTP API: bad requests get a 4xx JSON error and store nothing; good ones get 202."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.celery_app import make_celery
from app.db import LcsJob, engine_for
from app.migrate import upgrade
from app.settings import AppSettings
from app.web import create_app
from tests.app.conftest import free_port


class FakePublisher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = False

    def __call__(self, job_id: str, queue: str) -> None:
        if self.fail:
            raise ConnectionRefusedError("no broker")
        self.calls.append((job_id, queue))


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    settings = AppSettings(
        # A closed port: nothing here may need a broker except /readyz, which must say so.
        broker_urls=(f"amqp://guest:guest@127.0.0.1:{free_port()}//",),
        database_url=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        lcs_large_threshold=20,
        lcs_max_input_chars=50,
    )
    upgrade(settings.sqlalchemy_url)
    return settings


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def web(settings: AppSettings, publisher: FakePublisher) -> Flask:
    return create_app(settings, publisher=publisher)


@pytest.fixture
def client(web: Flask) -> FlaskClient:
    return web.test_client()


def stored_jobs(settings: AppSettings) -> int:
    with Session(engine_for(settings.sqlalchemy_url)) as session:
        return session.execute(select(func.count()).select_from(LcsJob)).scalar_one()


def test_a_valid_job_is_accepted_with_its_id_and_queue(
    client: FlaskClient, publisher: FakePublisher, settings: AppSettings
) -> None:
    response = client.post("/api/jobs", json={"a": "abcde", "b": "xbcdy"})
    assert response.status_code == 202
    body = response.get_json()
    assert publisher.calls == [(body["id"], "small")]
    assert body["queue"] == "small"
    assert response.headers["Location"] == f"/api/jobs/{body['id']}"
    assert stored_jobs(settings) == 1
    job = client.get(f"/api/jobs/{body['id']}").get_json()
    assert job["status"] == "queued" and job["a"] == "abcde" and job["result"] is None
    listed = client.get("/api/jobs").get_json()["jobs"]
    assert [item["id"] for item in listed] == [body["id"]]


def test_inputs_above_the_threshold_go_to_the_large_queue(client: FlaskClient) -> None:
    response = client.post("/api/jobs", json={"a": "a" * 11, "b": "b" * 10})
    assert response.status_code == 202 and response.get_json()["queue"] == "large"


BAD_REQUESTS = [
    pytest.param(
        {"data": "a=1&b=2", "content_type": "application/x-www-form-urlencoded"},
        415,
        "Content-Type: application/json",
        id="form-encoded",
    ),
    pytest.param(
        {"data": "{not json", "content_type": "application/json"},
        400,
        "not valid JSON",
        id="malformed-json",
    ),
    pytest.param(
        {"data": "", "content_type": "application/json"}, 400, "not valid JSON", id="empty-body"
    ),
    pytest.param({"json": ["a", "b"]}, 422, "must be a JSON object", id="json-array"),
    pytest.param({"json": {"a": "x"}}, 422, "field 'b' is missing", id="missing-field"),
    pytest.param({"json": {"a": 5, "b": "x"}}, 422, "field 'a' must be a string", id="number"),
    pytest.param({"json": {"a": "x" * 51, "b": "x"}}, 422, "the limit is 50", id="too-long"),
    pytest.param(
        {"data": json.dumps({"a": "\ud800", "b": "x"}), "content_type": "application/json"},
        422,
        "lone surrogate",
        id="lone-surrogate",
    ),
    pytest.param({"json": {"a": "x\u0000", "b": "x"}}, 422, "NUL", id="nul-char"),
    pytest.param(
        {"data": json.dumps({"a": "x" * 2_000_000, "b": ""}), "content_type": "application/json"},
        413,
        "too large",
        id="huge-body",
    ),
]


@pytest.mark.parametrize(("request_arguments", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_json_error_and_store_nothing(
    client: FlaskClient,
    publisher: FakePublisher,
    settings: AppSettings,
    request_arguments: dict,
    status: int,
    message: str,
) -> None:
    response = client.post("/api/jobs", **request_arguments)
    assert response.status_code == status
    assert response.is_json
    assert message in response.get_json()["error"]
    assert publisher.calls == []
    assert stored_jobs(settings) == 0


def test_when_the_broker_refuses_the_job_the_answer_is_503_and_nothing_is_stored(
    client: FlaskClient, publisher: FakePublisher, settings: AppSettings
) -> None:
    publisher.fail = True
    response = client.post("/api/jobs", json={"a": "abc", "b": "abd"})
    assert response.status_code == 503
    assert "nothing was stored" in response.get_json()["error"]
    assert stored_jobs(settings) == 0


def test_with_the_real_publisher_and_no_broker_nothing_is_stored(settings: AppSettings) -> None:
    # The production publisher (Celery, confirms, bounded retries) against a closed port.
    client = create_app(settings, celery=make_celery(settings)).test_client()
    response = client.post("/api/jobs", json={"a": "abc", "b": "abd"})
    assert response.status_code == 503
    assert stored_jobs(settings) == 0


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/jobs/not-a-uuid", 404, "is not a job id"),
        ("/api/jobs/6b1a3f9e-0c1d-4d5e-8f00-000000000000", 404, "no job"),
        ("/api/jobs?limit=0", 400, "limit must be a whole number 1..200"),
        ("/api/jobs?limit=ten", 400, "limit must be a whole number 1..200"),
        ("/no/such/page", 404, "not found on the server"),
    ],
)
def test_bad_lookups_get_json_errors(
    client: FlaskClient, path: str, status: int, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    response = client.delete("/api/jobs")
    assert response.status_code == 405 and response.is_json


def test_readyz_stays_ready_while_the_broker_is_down_and_status_names_it(
    client: FlaskClient,
) -> None:
    # Readiness is the pod's alone: a shared broker outage must not drain every web pod.
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    answer = client.get("/api/status")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["broker"]["up"] is False
    assert list(body["dependencies"]["broker"]["nodes"].values()) == [False]
    assert body["dependencies"]["database"]["up"] is True


def test_reads_keep_working_and_submissions_answer_503_fast_while_no_broker_node_answers(
    settings: AppSettings,
) -> None:
    # Three closed ports: every node refuses. The real publisher (confirms, failover) gives up
    # after about a second instead of spending its 8 s budget.
    urls = tuple(f"amqp://guest:guest@127.0.0.1:{free_port()}//" for _ in range(3))
    settings = dataclasses.replace(settings, broker_urls=urls)
    client = create_app(settings, celery=make_celery(settings)).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/api/jobs").status_code == 200
    started = time.monotonic()
    response = client.post("/api/jobs", json={"a": "abc", "b": "abd"})
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.get_json()["dependency"] == "broker"
    assert response.headers["Retry-After"].isdigit()
    assert elapsed < 2.0, f"a submission with no broker took {elapsed:.2f} s"
    assert stored_jobs(settings) == 0
    assert client.get("/readyz").status_code == 200


def test_the_page_uses_only_its_own_assets(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'id="job-form"' in page
    assert "http://" not in page and "https://" not in page
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200
