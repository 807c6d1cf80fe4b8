"""The JSON API takes any bytes: property-based requests against the real app on PostgreSQL.

Every request hypothesis can build (random bytes, invalid UTF-8, JSON nested thousands deep,
numbers with thousands of digits, wrong types, odd content types, valid jobs) gets a JSON answer
below 500, and only an accepted job (202) adds a row. The app runs with its real database
(a scratch PostgreSQL database) and a publisher that records what it was asked to publish, so a
rejected request is seen to publish nothing either.
"""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import LcsJob, engine_for
from app.settings import AppSettings
from app.web import create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MAX_CHARS = 2000


@pytest.fixture(scope="module")
def fuzz_app(postgres_url: str) -> Iterator[tuple]:
    app_settings = AppSettings(database_url=postgres_url, lcs_max_input_chars=MAX_CHARS)
    published: list[tuple[str, str]] = []
    app = create_app(
        app_settings, publisher=lambda job_id, queue: published.append((job_id, queue))
    )
    yield app.test_client(), engine_for(app_settings.sqlalchemy_url), published


def rows(engine) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(LcsJob)).scalar_one()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "b", "c", ""]) | st.text(max_size=5), children,
                      max_size=4),
    max_leaves=20,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(
        ["bytes", "json", "job", "deep", "huge-number", "bad-utf8", "near-job"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "job":
        text = st.text(max_size=60)
        return json.dumps({"a": draw(text), "b": draw(text)}).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=500, max_value=20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()
    if kind == "huge-number":
        digits = draw(st.integers(min_value=4000, max_value=20_000))
        return b'{"a": ' + b"9" * digits + b', "b": "x"}'
    if kind == "bad-utf8":
        return b'{"a": "' + draw(st.binary(min_size=1, max_size=20)) + b'\xff\xfe", "b": "x"}'
    value = draw(json_values)
    return json.dumps({"a": value, "b": draw(st.text(max_size=10))}).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(body=bodies(), content_type=st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", None]))
def test_post_jobs_never_answers_5xx_and_stores_only_accepted_jobs(
    fuzz_app, body: bytes, content_type: str | None
) -> None:
    client, engine, published = fuzz_app
    before, published_before = rows(engine), len(published)
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/jobs", data=body, headers=headers)
    assert response.status_code < 500, (body[:200], response.get_data()[:300])
    assert (response.is_json and "error" in response.get_json()) or response.status_code == 202
    if response.status_code == 202:
        assert rows(engine) == before + 1
        assert len(published) == published_before + 1
    else:
        assert rows(engine) == before, body[:200]
        assert len(published) == published_before


@settings(max_examples=200, deadline=None)
@given(job_id=st.text(alphabet=string.printable + "éü\u2028", max_size=60) | st.uuids().map(str))
def test_get_job_never_answers_5xx(fuzz_app, job_id: str) -> None:
    client, _, _ = fuzz_app
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code < 500, (job_id, response.get_data()[:300])
    assert response.is_json or response.status_code in (404, 405, 308)


def test_an_unmigrated_database_answers_503_naming_the_migration(empty_postgres_url: str) -> None:
    app_settings = AppSettings(database_url=empty_postgres_url)
    published: list[tuple[str, str]] = []
    client = create_app(app_settings, publisher=lambda *job: published.append(job)).test_client()
    for response in (
        client.post("/api/jobs", json={"a": "abc", "b": "bcd"}),
        client.get("/api/jobs"),
        client.get(f"/api/jobs/{uuid.uuid4()}"),
    ):
        assert response.status_code == 503, response.get_data()
        assert "python -m app.migrate" in response.get_json()["error"]
    assert published == []
