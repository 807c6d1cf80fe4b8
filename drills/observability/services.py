"""The drill's own processes: Prometheus, Alertmanager, the exporters and the app's processes.

Owns ``ProcessGroup`` (every process the drill starts, each in its own session with a log file,
stopped TERM-then-KILL, all of them on the way out even when the drill fails), a small client for
Prometheus' HTTP API, and ``wait_until``. The broker cluster (``drills.rabbitmq_cluster``) and
PostgreSQL with pghoard (``drills.postgres_backup``) manage their own processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.local_services import stop_process_group

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
POSTGRES_EXPORTER = "/usr/bin/prometheus-postgres-exporter"
PREREQUISITE = "scripts/prereq.d/50-observability.sh"


class DrillFailure(RuntimeError):
    """A step of the drill could not be carried out (not a measured result)."""


def prerequisites_missing() -> str | None:
    for binary in (PROMETHEUS, ALERTMANAGER, POSTGRES_EXPORTER):
        if not os.access(binary, os.X_OK):
            return f"{binary} is missing: run {PREREQUISITE}"
    return None


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str,
               poll: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DrillFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local
            return 200 <= response.status < 300
    except OSError:
        return False


@dataclass
class Managed:
    name: str
    command: list[str]
    environment: dict[str, str]
    log: Path
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return "(no log)"


class ProcessGroup:
    """Every process the drill starts; ``stop_all`` leaves none behind."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: dict[str, Managed] = {}

    def start(self, name: str, command: list[str], environment: Mapping[str, str],
              *, cwd: Path | None = None) -> Managed:
        if name in self.started and self.started[name].alive():
            raise DrillFailure(f"{name} is already running")
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                command, env=dict(environment), cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        managed = Managed(name, command, dict(environment), log, process)
        self.started[name] = managed
        return managed

    def restart(self, name: str) -> Managed:
        old = self.started[name]
        return self.start(name, old.command, old.environment)

    def stop(self, name: str, grace: float = 10.0) -> None:
        managed = self.started.get(name)
        if managed is not None:
            stop_process_group(managed.process, grace=grace)

    def stop_all(self) -> None:
        for name in reversed(list(self.started)):
            self.stop(name, grace=5.0)

    def failed(self) -> list[str]:
        return [f"{m.name} exited {m.process.returncode}:\n{m.log_tail()}"
                for m in self.started.values() if not m.alive()]


class PrometheusApi:
    """The few calls of Prometheus' HTTP API the drill needs."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:  # noqa: S310
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise DrillFailure(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query: the resulting series (empty: no data)."""
        data = self._get("/api/v1/query", query=expr)
        return list(data["result"]) if data["resultType"] == "vector" else [data["result"]]

    def alerts(self) -> list[dict]:
        return list(self._get("/api/v1/alerts")["alerts"])

    def firing(self) -> list[str]:
        return sorted({a["labels"]["alertname"] for a in self.alerts() if a["state"] == "firing"})

    def rule_groups(self) -> list[dict]:
        return list(self._get("/api/v1/rules")["groups"])

    def targets(self) -> list[dict]:
        return list(self._get("/api/v1/targets", state="active")["activeTargets"])

    def unhealthy_targets(self) -> list[str]:
        return sorted(
            f"{t['labels'].get('job')} {t['labels'].get('instance')}: "
            f"{t.get('lastError') or t['health']}"
            for t in self.targets()
            if t["health"] != "up"
        )
