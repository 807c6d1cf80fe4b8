"""The page writes numbers with thousands separators and never wraps inside one.

The template is rendered by Flask's test client; the live job list (built by app.js) is looked
at in headless Chromium, in a column narrow enough that the inputs and the result must wrap.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from app.celery_app import make_celery
from app.migrate import upgrade
from app.settings import AppSettings
from app.web import create_app
from tests.app.conftest import free_port
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGUMENTS, _answers


def test_the_page_header_writes_its_limits_with_thousands_separators(tmp_path):
    settings = AppSettings(broker_urls=(f"amqp://guest:guest@127.0.0.1:{free_port()}//",),
                           database_url=f"sqlite:///{tmp_path / 'page.sqlite3'}",
                           lcs_large_threshold=12_500, lcs_max_input_chars=1_000_000)
    upgrade(settings.sqlalchemy_url)
    page = create_app(settings, celery=make_celery(settings),
                      publisher=lambda *_: None).test_client().get("/")
    text = page.get_data(as_text=True)
    assert "Jobs up to 12,500 characters" in text
    assert "may have\n       1,000,000 characters" in text
    assert 'maxlength="1000000"' in text  # an attribute stays a plain number


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.timeout(180)
def test_counts_in_the_job_list_are_separated_and_never_wrapped(
        start_service, start_worker, service_environment):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/prereq.d/30-chromium.sh")
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_service("web", [str(Path(sys.executable).parent / "gunicorn"), "--config",
                          "python:app.gunicorn_conf", "app.web:create_app()"],
                  {**service_environment, "PORT": str(port), "WEB_CONCURRENCY": "1"},
                  ready_when=lambda _s: _answers(f"{url}/healthz"))
    start_worker("small,large", concurrency=1, name="page-numbers")
    # 1,500 + 1,750 characters with a 1,234-character common run: every count has 4 digits.
    common = "ab" * 617
    body = json.dumps({"a": "x" * 266 + common, "b": "y" * 516 + common}).encode()
    request = urllib.request.Request(f"{url}/api/jobs", data=body,  # noqa: S310 - local URL
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local URL
        assert response.status == 202

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_ARGUMENTS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 640, "height": 800})
            page.goto(url)
            row = page.locator("#jobs tbody tr").first
            expect(row.locator(".status")).to_have_text("succeeded", timeout=60_000)
            counts = row.locator(".count")
            expect(counts).to_have_text(["(1,500+1,750 chars)", "(1,234)"])
            # The cells wrap (the inputs are long), but each count is a single line box.
            for index in range(2):
                lines = counts.nth(index).evaluate("span => span.getClientRects().length")
                assert lines == 1, counts.nth(index).inner_text()
            assert row.locator(".result").evaluate("td => td.getClientRects()[0].height") > 40
        finally:
            browser.close()
