"""The web server's start-up: a bad setting stops gunicorn at once with the workers' one line,
and it listens on 127.0.0.1 unless it runs in Kubernetes (or is told otherwise).

The settings are tested as a pure function; gunicorn itself is started the way the README and
the web Deployment start it, with the environment varied.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.gunicorn_conf import ALL_INTERFACES, WebServerSettings, web_server_settings
from app.settings import SettingsError
from tests.app.conftest import REPOSITORY, free_port

GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "--config", "python:app.gunicorn_conf",
            "app.web:create_app()"]


# --- the settings, as a pure function -----------------------------------------------------------


def test_outside_kubernetes_the_default_is_this_machine_only():
    assert web_server_settings({}) == WebServerSettings(host="127.0.0.1", port=8000,
                                                         processes=2, log_level="info")
    assert web_server_settings({}).bind == "127.0.0.1:8000"


def test_inside_kubernetes_the_default_is_every_interface_so_the_service_reaches_the_pod():
    settings = web_server_settings({"KUBERNETES_SERVICE_HOST": "10.20.0.1", "PORT": "8000"})
    assert settings.bind == "0.0.0.0:8000"


def test_web_host_port_processes_and_log_level_are_taken_from_the_environment():
    settings = web_server_settings({"WEB_HOST": "::1", "PORT": "9001", "WEB_CONCURRENCY": "4",
                                    "LOG_LEVEL": "WARNING"})
    assert (settings.bind, settings.processes, settings.log_level) == ("[::1]:9001", 4, "warning")
    assert web_server_settings({"WEB_HOST": ALL_INTERFACES}).bind == "0.0.0.0:8000"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PORT", "http", "PORT: 'http' is not a TCP port; give a whole number between 1 and 65535"),
    ("PORT", "70000", "PORT: '70000' is not a TCP port"),
    ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY: '0' is not a number of web processes; give a "
                             "whole number between 1 and 64"),
    ("WEB_CONCURRENCY", "two", "WEB_CONCURRENCY: 'two' is not a number of web processes"),
    ("LOG_LEVEL", "loud", "LOG_LEVEL: 'loud' is not a log level; give one of debug, info, "
                          "warning, error, critical"),
    ("WEB_HOST", "no such host", "WEB_HOST: 'no such host' is not an address to listen on"),
    ("WEB_HOST", "999.1.2.3", "WEB_HOST: '999.1.2.3' is not an address to listen on"),
])
def test_a_bad_server_setting_names_the_variable_the_value_and_the_fix(name, value, message):
    with pytest.raises(SettingsError) as caught:
        web_server_settings({name: value})
    assert str(caught.value).startswith(message)


# --- gunicorn itself --------------------------------------------------------------------------


def _environment(**changes: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("CELERY_", "DATABASE_", "LCS_", "WEB_", "KUBERNETES_"))
                   and key not in ("PORT", "LOG_LEVEL")}
    environment.update(PYTHONPATH=str(REPOSITORY), PORT=str(free_port()), WEB_CONCURRENCY="1")
    environment.update(changes)
    return environment


def _first_line_of(command: list[str], environment: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    completed = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True,
                               text=True, timeout=60)
    lines = completed.stderr.strip().splitlines()
    return completed.returncode, lines[-1] if lines else "", time.monotonic() - started


def test_gunicorn_stops_on_a_bad_app_setting_with_the_workers_line():
    environment = _environment(LCS_LARGE_THRESHOLD="lots")
    code, line, _ = _first_line_of(GUNICORN, environment)
    worker_code, worker_line, _ = _first_line_of(
        [sys.executable, "-c", "import app.celery_app"], environment)
    assert (code, worker_code) == (2, 2)
    assert line == worker_line == ("invalid configuration: LCS_LARGE_THRESHOLD: 'lots' is not a "
                                   "whole number (e.g. 1000)")


def test_gunicorn_stops_on_a_bad_server_setting_before_listening():
    code, line, _ = _first_line_of(GUNICORN, _environment(PORT="http"))
    assert code == 2
    assert line.startswith("invalid configuration: PORT: 'http' is not a TCP port")


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc, no tools needed)."""
    addresses = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            addresses.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return addresses


def _bound_addresses(environment: dict[str, str]) -> set[str]:
    """Start gunicorn, wait until it listens, and return where; stop it again."""
    port = int(environment["PORT"])
    process = subprocess.Popen(GUNICORN, cwd=REPOSITORY, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _listening_addresses(port):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not listen within 30 s"
            time.sleep(0.1)
        return _listening_addresses(port)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorn_listens_on_localhost_only_by_default():
    assert _bound_addresses(_environment()) == {"127.0.0.1"}


def test_the_web_deployments_command_and_environment_listen_where_the_service_sends_traffic():
    from stacks import plan as plan_engine

    # The Deployment's own command and plain environment (its PORT) plus what every pod gets
    # from the kubelet; only the port number is swapped for a free one on this machine.
    deployment = plan_engine.evaluate("dev").manifest("Deployment", "web")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    environment = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    [http] = [port for port in container["ports"] if port["name"] == "http"]
    assert environment["PORT"] == str(http["containerPort"])
    assert container["command"] == ["gunicorn", *GUNICORN[1:]]
    pod = _environment(**environment, KUBERNETES_SERVICE_HOST="10.20.0.1")
    pod["PORT"] = str(free_port())
    assert _bound_addresses(pod) == {ALL_INTERFACES}
