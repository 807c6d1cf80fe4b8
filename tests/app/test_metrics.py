"""The web app's metrics: what each request records, and exact totals across gunicorn workers.

In-process tests use Flask's test client; the multiprocess tests run real processes (worker
processes writing their files, a real gunicorn with recycled workers) and compare the scraped
totals with the requests sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.migrate import upgrade
from app.settings import AppSettings
from app.web import create_app
from tests.app.conftest import REPOSITORY, free_port


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class FakePublisher:
    def __init__(self) -> None:
        self.fail = False

    def __call__(self, job_id: str, queue: str) -> None:
        if self.fail:
            raise ConnectionRefusedError("no broker")


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def web(tmp_path: Path, publisher: FakePublisher) -> Flask:
    settings = AppSettings(
        broker_urls=(f"amqp://guest:guest@127.0.0.1:{free_port()}//",),
        database_url=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        lcs_large_threshold=20,
        lcs_max_input_chars=50,
    )
    upgrade(settings.sqlalchemy_url)
    return create_app(settings, publisher=publisher)


def test_requests_are_counted_by_route_template_method_and_status(web: Flask):
    client = web.test_client()
    route = {"method": "GET", "route": "/api/jobs/<job_id>", "status": "404"}
    before = sample("hacelery_web_requests_total", route)
    for _ in range(3):
        client.get("/api/jobs/not-a-uuid")
    assert sample("hacelery_web_requests_total", route) == before + 3
    latency = {"method": "GET", "route": "/api/jobs/<job_id>"}
    assert sample("hacelery_web_request_duration_seconds_count", latency) >= 3


def test_unknown_paths_share_one_label_instead_of_one_series_each(web: Flask):
    client = web.test_client()
    unmatched = {"method": "GET", "route": metrics.UNMATCHED_ROUTE, "status": "404"}
    before = sample("hacelery_web_requests_total", unmatched)
    client.get("/wp-login.php")
    client.get("/.env")
    assert sample("hacelery_web_requests_total", unmatched) == before + 2
    assert sample("hacelery_web_requests_total", {**unmatched, "route": "/.env"}) == 0


def test_accepted_jobs_count_per_queue_and_rejections_per_reason(web: Flask, publisher):
    client = web.test_client()
    small = sample("hacelery_jobs_submitted_total", {"queue": "small"})
    large = sample("hacelery_jobs_submitted_total", {"queue": "large"})
    invalid = sample("hacelery_jobs_rejected_total", {"reason": "invalid_request"})
    unavailable = sample("hacelery_jobs_rejected_total", {"reason": "queue_unavailable"})

    assert client.post("/api/jobs", json={"a": "abc", "b": "abd"}).status_code == 202
    assert client.post("/api/jobs", json={"a": "a" * 30, "b": "b"}).status_code == 202
    assert client.post("/api/jobs", json={"a": 1, "b": "x"}).status_code == 422
    assert client.post("/api/jobs", data="not json").status_code == 415
    publisher.fail = True
    assert client.post("/api/jobs", json={"a": "abc", "b": "abd"}).status_code == 503

    assert sample("hacelery_jobs_submitted_total", {"queue": "small"}) == small + 1
    assert sample("hacelery_jobs_submitted_total", {"queue": "large"}) == large + 1
    assert sample("hacelery_jobs_rejected_total", {"reason": "invalid_request"}) == invalid + 2
    assert sample("hacelery_jobs_rejected_total",
                  {"reason": "queue_unavailable"}) == unavailable + 1


def test_in_progress_returns_to_zero_after_an_unexpected_error(web: Flask):
    @web.get("/boom")
    def boom():
        raise RuntimeError("boom")

    before = sample("hacelery_web_requests_in_progress", {})
    assert web.test_client().get("/boom").status_code == 500
    assert sample("hacelery_web_requests_in_progress", {}) == before
    assert sample("hacelery_web_requests_total",
                  {"method": "GET", "route": "/boom", "status": "500"}) >= 1


def test_the_app_port_does_not_serve_metrics(web: Flask):
    assert web.test_client().get("/metrics").status_code == 404


@pytest.mark.parametrize("value", ["http", "80", "70000", "-1"])
def test_a_bad_metrics_port_is_refused_with_the_fix(value):
    with pytest.raises(ValueError, match=r"METRICS_PORT: .* use 1024-65535"):
        metrics.metrics_port({"METRICS_PORT": value})


def test_metrics_port_defaults_to_9100_and_zero_switches_it_off():
    assert metrics.metrics_port({}) == 9100
    assert metrics.metrics_port({"METRICS_PORT": "0"}) is None


# ------------------------------------------------------------------------- multiprocess

WRITER = textwrap.dedent(
    """
    import sys
    from app import metrics
    for _ in range(int(sys.argv[1])):
        metrics.REQUESTS.labels("GET", "/x", "200").inc()
        metrics.DURATION.labels("GET", "/x").observe(0.2)
    """
)


def _write_from_processes(directory: Path, counts: list[int]) -> list[int]:
    """Run one short-lived process per count; returns their pids (from their files' names)."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory),
                   "PYTHONPATH": str(REPOSITORY)}
    for count in counts:
        subprocess.run([sys.executable, "-c", WRITER, str(count)], env=environment, check=True,
                       capture_output=True, timeout=60)
    return sorted(int(path.stem.split("_")[1]) for path in directory.glob("counter_*.db"))


def _totals(directory: Path) -> tuple[float, float]:
    reader = textwrap.dedent(
        """
        from app import metrics
        from prometheus_client import generate_latest
        print(generate_latest(metrics.registry()).decode())
        """
    )
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory),
                   "PYTHONPATH": str(REPOSITORY)}
    text = subprocess.run([sys.executable, "-c", reader], env=environment, check=True,
                          capture_output=True, text=True, timeout=60).stdout
    values = {
        (s.name, s.labels.get("le")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("route") == "/x"
    }
    return values[("hacelery_web_requests_total", None)], values[
        ("hacelery_web_request_duration_seconds_bucket", "0.25")]


def test_archiving_an_exited_process_keeps_every_count_and_removes_its_files(tmp_path):
    pids = _write_from_processes(tmp_path, [3, 5, 7])
    assert len(pids) == 3
    assert _totals(tmp_path) == (15.0, 15.0)

    for pid in pids[:2]:
        assert metrics.archive_dead_process(pid, tmp_path) == 2  # its counter and histogram
    assert _totals(tmp_path) == (15.0, 15.0)
    remaining = {p.name for p in tmp_path.glob("*.db") if "gauge" not in p.name}
    assert remaining == {"counter_archive.db", f"counter_{pids[2]}.db",
                         "histogram_archive.db", f"histogram_{pids[2]}.db"}
    assert metrics.archive_dead_process(pids[2], tmp_path) == 2
    assert _totals(tmp_path) == (15.0, 15.0)


def test_prepare_directory_starts_from_nothing(tmp_path):
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    metrics.prepare_directory(tmp_path)
    assert list(tmp_path.iterdir()) == []


def _scrape(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, s.labels.get("route", ""), s.labels.get("status", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local URL
            return response.status == 200
    except OSError:
        return False


@pytest.mark.integration
def test_gunicorn_with_recycled_workers_reports_exact_totals(
    start_service, service_environment, tmp_path
):
    """Real gunicorn, 2 workers, each recycled after 5 requests: 30 requests in, 30 counted,
    and the files stay bounded (exited workers are archived)."""
    port, metrics_port = free_port(), free_port()
    multiproc = tmp_path / "prometheus"
    (multiproc / "counter_99999.db").parent.mkdir()
    (multiproc / "counter_99999.db").write_bytes(b"stale from a previous container")
    environment = {**service_environment, "PORT": str(port), "WEB_CONCURRENCY": "2",
                   "METRICS_PORT": str(metrics_port), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config",
               "python:app.gunicorn_conf", "--max-requests", "5", "--max-requests-jitter", "0",
               "app.web:create_app()"]
    url = f"http://127.0.0.1:{port}"
    start_service("web", command, environment, ready_when=lambda _s: _answers(f"{url}/healthz"))
    healthz = ("hacelery_web_requests_total", "/healthz", "200")
    already = _scrape(metrics_port).get(healthz, 0.0)  # the readiness polls above
    for _ in range(30):
        # A recycled worker takes a second or two to import the app again: wait, don't retry
        # (a retry would send a request the count does not expect).
        assert _answers(f"{url}/healthz", timeout=30)
    scraped = _scrape(metrics_port)
    assert scraped[healthz] - already == 30
    counts = {k: v for k, v in scraped.items()
              if k[0] == "hacelery_web_request_duration_seconds_count" and k[1] == "/healthz"}
    assert sum(counts.values()) == scraped[healthz]
    files = sorted(p.name for p in multiproc.glob("*.db"))
    assert "counter_99999.db" not in files  # emptied at start
    assert "counter_archive.db" in files  # recycled workers were archived
    live_counters = [f for f in files if f.startswith("counter_") and f != "counter_archive.db"]
    assert len(live_counters) <= 2  # only the running workers' own files


@pytest.mark.integration
def test_each_gunicorn_gets_its_own_metrics_directory_and_removes_it(
    start_service, service_environment
):
    from drills.local_services import stop_process_group

    port, metrics_port = free_port(), free_port()
    environment = {**service_environment, "PORT": str(port), "WEB_CONCURRENCY": "1",
                   "METRICS_PORT": str(metrics_port)}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config",
               "python:app.gunicorn_conf", "app.web:create_app()"]
    url = f"http://127.0.0.1:{port}"
    web = start_service("web", command, environment,
                        ready_when=lambda _s: _answers(f"{url}/healthz"))
    assert _scrape(metrics_port)[("hacelery_web_requests_total", "/healthz", "200")] >= 1
    # The worker maps its metric files: their directory is the one gunicorn made for itself.
    worker_pid = int(Path(f"/proc/{web.process.pid}/task/{web.process.pid}/children")
                     .read_text().split()[0])
    mapped = {Path(line.split()[-1]).parent for line in
              Path(f"/proc/{worker_pid}/maps").read_text().splitlines()
              if line.rstrip().endswith(".db")}
    (directory,) = mapped
    assert directory.name.startswith("prometheus-metrics-") and directory.is_dir()
    stop_process_group(web.process)
    assert not directory.exists()
