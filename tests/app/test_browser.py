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


def _start_web(start_service, service_environment: dict[str, str], **overrides: str) -> str:
    port = free_port()
    environment = {
        **service_environment, "PORT": str(port), "WEB_CONCURRENCY": "1", **overrides
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--config",
        "python:app.gunicorn_conf",
        "app.web:create_app()",
    ]
    url = f"http://127.0.0.1:{port}"
    start_service("web", command, environment, ready_when=lambda _s: _answers(f"{url}/healthz"))
    return url


@pytest.fixture
def web_url(start_service, service_environment: dict[str, str]) -> str:
    return _start_web(start_service, service_environment)


def _launch(playwright):  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/prereq.d/30-chromium.sh")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS, headless=True
    )


def test_submitting_the_form_shows_the_result_in_the_job_list(web_url: str, start_worker) -> None:
    from playwright.sync_api import expect, sync_playwright

    start_worker("small,large", concurrency=1, name="browser")
    assert _answers(f"{web_url}/readyz")
    with sync_playwright() as playwright:
        browser = _launch(playwright)
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
            expect(page.locator("#dependency-banner")).to_be_hidden()
            assert failed_requests == []
        finally:
            browser.close()


def test_with_the_broker_down_the_page_shows_a_banner_and_still_lists_jobs(
    start_service, service_environment: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    closed = ";".join(f"amqp://guest:guest@127.0.0.1:{free_port()}//" for _ in range(3))
    web_url = _start_web(start_service, service_environment, CELERY_BROKER_URL=closed)
    assert _answers(f"{web_url}/readyz"), "readiness must not depend on the broker"
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            page.goto(web_url)
            banner = page.locator("#dependency-banner")
            expect(banner).to_be_visible(timeout=10_000)
            expect(banner.locator("[data-dependency=broker]")).to_contain_text(
                "new jobs cannot be submitted"
            )
            expect(banner.locator("[data-dependency=database]")).to_have_count(0)
            expect(page.locator("#refreshed")).to_contain_text("updated")
            page.fill("#input-a", "abc")
            page.fill("#input-b", "abd")
            page.click("#submit")
            expect(page.locator("#form-message")).to_contain_text("task queue is unavailable")
        finally:
            browser.close()
