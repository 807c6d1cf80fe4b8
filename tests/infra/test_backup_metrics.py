"""pghoard/backup_metrics.py: backup freshness as metrics, still served while pghoard is down.

Pure tests on pghoard's /status document (the same shapes the backup check's tests use), one
through a real HTTP server in front of a stand-in pghoard API, and a comparison of the metric
names with what the alert rules query. The drill runs it against a real pghoard.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.observability import sources
from tests.infra.test_pghoard_scripts import MONOTONIC, NOW, REPO, status

sys.path.insert(0, str(REPO / "pghoard"))
import backup_metrics

REMEMBERED_METRICS = (
    "backup_daemon_start_timestamp_seconds",
    "backup_newest_basebackup_start_timestamp_seconds",
    "backup_basebackups",
    "backup_last_wal_upload_timestamp_seconds",
)


def parse(text: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("file", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("site") == "site"
    }


def look(remembered, state, *, alert_files=None, now=NOW, monotonic=MONOTONIC) -> str:
    up = backup_metrics.observe(remembered, state, site="site", alert_files=alert_files,
                                now_wall=now, now_monotonic=monotonic)
    return backup_metrics.render(remembered, site="site", up=up)


def test_metrics_are_timestamps_of_the_newest_backup_and_the_last_wal_upload():
    metrics = parse(look(backup_metrics.Remembered(), status(backup_age_hours=2,
                                                             wal_age_seconds=90)))
    assert metrics[("backup_daemon_up", "")] == 1
    assert metrics[("backup_newest_basebackup_start_timestamp_seconds", "")] == (
        NOW - dt.timedelta(hours=2)).timestamp()
    assert metrics[("backup_last_wal_upload_timestamp_seconds", "")] == NOW.timestamp() - 90
    assert metrics[("backup_daemon_start_timestamp_seconds", "")] == (
        NOW - dt.timedelta(days=3)).timestamp()
    assert metrics[("backup_basebackups", "")] == 2
    assert metrics[("backup_wal_streamer_running", "")] == 1


def test_while_pghoard_is_down_the_last_values_stay_so_their_age_keeps_growing():
    remembered = backup_metrics.Remembered()
    seen = parse(look(remembered, status(backup_age_hours=2, wal_age_seconds=90)))
    later = parse(look(remembered, None, now=NOW + dt.timedelta(hours=1)))
    assert later[("backup_daemon_up", "")] == 0
    for name in REMEMBERED_METRICS:
        assert later[(name, "")] == seen[(name, "")], name
    assert ("backup_wal_streamer_running", "") not in later  # unknown while down


def test_a_restarted_pghoard_without_uploads_yet_keeps_the_last_known_upload():
    remembered = backup_metrics.Remembered()
    look(remembered, status(wal_age_seconds=90))
    restarted = parse(look(remembered, status(wal_age_seconds=None)))
    assert restarted[("backup_last_wal_upload_timestamp_seconds", "")] == NOW.timestamp() - 90


def test_no_base_backup_yet_leaves_the_timestamp_out_for_the_alert_to_use_the_start():
    metrics = parse(look(backup_metrics.Remembered(), status(backups=False)))
    assert ("backup_newest_basebackup_start_timestamp_seconds", "") not in metrics
    assert metrics[("backup_basebackups", "")] == 0


def test_every_pghoard_alert_file_is_a_series_and_a_present_one_is_1():
    metrics = parse(look(backup_metrics.Remembered(), status(),
                         alert_files=["authentication_error"]))
    files = {file: value for (name, file), value in metrics.items()
             if name == "backup_alert_file_present"}
    assert files["authentication_error"] == 1
    assert set(files) == set(backup_metrics.check_backup.ALERT_FILES)
    assert sum(files.values()) == 1


def test_the_names_are_the_ones_the_alert_rules_query():
    served = set(backup_metrics.HELP)
    queried = {
        sources.BACKUP_DAEMON_UP, sources.BACKUP_DAEMON_START, sources.BACKUP_NEWEST_BASEBACKUP,
        sources.BACKUP_BASEBACKUPS, sources.BACKUP_LAST_WAL_UPLOAD,
        sources.BACKUP_WAL_STREAMER_RUNNING, sources.BACKUP_ALERT_FILE,
    }
    assert served == queried


class FakePghoard:
    """pghoard's API on a real socket: ``state`` is served at /status; None closes it."""

    def __init__(self) -> None:
        self.state: dict | None = status(wal_age_seconds=5)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if owner.state is None:
                    self.send_error(503)
                    return
                body = json.dumps(owner.state).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pghoard_api():
    api = FakePghoard()
    yield api
    api.close()


def test_served_over_http_from_a_config_file(tmp_path: Path, pghoard_api):
    alerts = tmp_path / "alerts"
    alerts.mkdir()
    config = tmp_path / "pghoard.json"
    config.write_text(json.dumps({"http_port": pghoard_api.port, "alert_file_dir": str(alerts),
                                  "backup_sites": {"site": {}}}))
    exporter = backup_metrics.exporter_from_config(config)
    server = backup_metrics.serve(exporter, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        def scrape() -> dict:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                return parse(response.read().decode())

        assert scrape()[("backup_daemon_up", "")] == 1
        (alerts / "upload_retries_warning").touch()
        pghoard_api.state = None
        down = scrape()
        assert down[("backup_daemon_up", "")] == 0
        assert down[("backup_alert_file_present", "upload_retries_warning")] == 1
        assert ("backup_newest_basebackup_start_timestamp_seconds", "") in down
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_config_with_two_sites_is_refused_with_the_reason(tmp_path: Path, capsys):
    config = tmp_path / "pghoard.json"
    config.write_text(json.dumps({"backup_sites": {"a": {}, "b": {}}}))
    with pytest.raises(SystemExit) as raised:
        backup_metrics.main(["--config", str(config), "--once"])
    assert raised.value.code == 2
    assert "expected exactly one backup site" in capsys.readouterr().err


def test_a_bad_port_is_refused_with_an_example(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        backup_metrics.main(["--config", str(tmp_path / "x.json"), "--port", "http"])
    assert "is not a TCP port (1-65535), e.g. 9188" in capsys.readouterr().err
