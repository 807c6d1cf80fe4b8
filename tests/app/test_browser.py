"""The page in headless Chromium: submit the form, see the job's result appear in the live list.

The web app runs under gunicorn exactly as the container runs it, with a real worker behind it.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from tests.app.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(180)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGUMENTS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def web_url(start_service, service_environment: dict[str, str]) -> str:
    port = free_port()
    environment = {**service_environment, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--config",
        "python:app.gunicorn_conf",
        "app.web:create_app()",
    ]
    url = f"http://127.0.0.1:{port}"
    start_service("web", command, environment, ready_when=lambda _s: _answers(f"{url}/healthz"))
    return url


def test_submitting_the_form_shows_the_result_in_the_job_list(web_url: str, start_worker) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/prereq.d/30-chromium.sh")
    from playwright.sync_api import expect, sync_playwright

    start_worker("small,large", concurrency=1, name="browser")
    assert _answers(f"{web_url}/readyz")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS, headless=True
        )
        try:
            page = browser.new_page()
            failed_requests: list[str] = []
            page.on("requestfailed", lambda request: failed_requests.append(request.url))
            page.goto(web_url)
            page.fill("#input-a", "ha-celery: reliable tasks")
            page.fill("#input-b", "unreliable tasks everywhere")
            page.click("#submit")
            expect(page.locator("#form-message")).to_contain_text("queued on small")
            row = page.locator("#jobs tbody tr").first
            expect(row.locator(".status")).to_have_text("succeeded", timeout=60_000)
            expect(row.locator(".result")).to_have_text('"reliable tasks" (14)')
            expect(row).to_contain_text("small")
            assert failed_requests == []
        finally:
            browser.close()
