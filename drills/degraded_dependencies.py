"""Degrade, don't go dark: the web tier and the workers through a database kill and a broker outage.

On this machine, with its own PostgreSQL (configured as deployed: ``drills/postgres_backup.py``
starts it, TLS on) and its own 3-node RabbitMQ cluster (``drills/rabbitmq_cluster.py``), the web
app under gunicorn exactly as its container runs it, and one worker consuming ``small`` and
``large`` as the Deployments do:

(a) **database**: under load (clients submitting jobs and reading the list, the worker writing
    results), PostgreSQL is SIGKILLed (the postmaster and every backend: no shutdown) and
    started again after ``window`` seconds (crash recovery);
(b) **broker**: two of the three nodes are killed, then the last one; the nodes are started
    again after ``window`` seconds in all.

Measured per phase and endpoint: the responses by status and the slowest answer, whether every
error was JSON; the readiness probe's answers over time; jobs accepted (202) whose result never
arrived (lost), jobs left ``running``, rows no client was told about (half-created); the time
from the dependency's return to the first accepted submission and until every accepted job
finished.

``python -m drills.degraded_dependencies [--window 30] > report.json`` prints one JSON object
(stdout) and a Markdown table (stderr, with progress). Exit 0 when every goal held, 1 when one
was missed, 2 when the drill cannot run here (not root, no PostgreSQL 15 or RabbitMQ).

Owns the scenario, the load and the report; does not own how PostgreSQL or RabbitMQ are started
(the harnesses above) or what the app does (``app/``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drills import postgres_backup as pg
from drills.celery_failover.processes import ProcessSet
from drills.local_services import app_environment
from drills.rabbitmq_cluster import LocalRabbitMQCluster

REPOSITORY = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SUBMIT_BUDGET_SECONDS = 2.0
"""The goal: a submission during an outage answers 503 JSON within this long."""
REQUEST_TIMEOUT_SECONDS = 15.0
"""A client gives up after this long: an answer that slow is reported, never waited for ever."""
MAX_REQUESTS_PER_CLIENT = 20_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prerequisites_missing() -> str | None:
    if os.geteuid() != 0:
        return "the drill runs PostgreSQL as the postgres user and must start as root"
    if not (pg.PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 binaries not found in {pg.PG_BIN}"
    if shutil.which("rabbitmq-server") is None and not Path("/usr/lib/rabbitmq/bin").exists():
        return "rabbitmq-server is not installed (scripts/prereq.d/)"
    return None


# --------------------------------------------------------------------------------- the load


@dataclass
class Answer:
    endpoint: str
    phase: str
    status: int
    """HTTP status; 0 when no answer came (connection refused or the client's timeout)."""
    seconds: float
    is_json: bool
    job_id: str | None = None
    at: float = 0.0


class Load:
    """Two client threads against the web app: one submits jobs and reads them, one asks the
    readiness probe every half second. Every answer is kept with the phase it fell in."""

    def __init__(self, port: int, *, input_length: int = 300) -> None:
        self.port = port
        self.input_length = input_length
        self.phase = "before"
        self.answers: list[Answer] = []
        self.readiness: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._clients, name="load-clients", daemon=True),
                         threading.Thread(target=self._probe, name="load-probe", daemon=True)]
        self.started = time.monotonic()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_SECONDS + 5)

    def _request(self, method: str, path: str, body: dict | None = None) -> Answer:
        started, phase = time.monotonic(), self.phase  # the phase the request was sent in
        connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                timeout=REQUEST_TIMEOUT_SECONDS)
        status, is_json, job_id = 0, False, None
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            status = response.status
            is_json = response.getheader("Content-Type", "").startswith("application/json")
            if is_json and status == 202:
                job_id = json.loads(raw)["id"]
            elif is_json and status == 503:
                job_id = json.loads(raw).get("id")  # a publish not confirmed names its job
        except (OSError, http.client.HTTPException, ValueError):
            status = 0
        finally:
            connection.close()
        return Answer(endpoint=f"{method} {path.split('?')[0]}", phase=phase, status=status,
                      seconds=time.monotonic() - started, is_json=is_json, job_id=job_id,
                      at=started - self.started)

    def _clients(self) -> None:
        rng = random.Random(14)
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if self._stop.is_set():
                return
            a = "".join(rng.choices("ACGT", k=self.input_length))
            b = "".join(rng.choices("ACGT", k=self.input_length))
            for answer in (self._request("GET", "/"),
                           self._request("GET", "/api/jobs?limit=20"),
                           self._request("POST", "/api/jobs", {"a": a, "b": b})):
                with self._lock:
                    self.answers.append(answer)
            self._stop.wait(0.1)

    def _probe(self) -> None:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if self._stop.is_set():
                return
            answer = self._request("GET", "/readyz")
            with self._lock:
                self.readiness.append((answer.at, answer.phase, answer.status))
            self._stop.wait(0.5)

    def first_accepted_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` (monotonic) to the first 202 sent after it."""
        with self._lock:
            times = [a.at + a.seconds for a in self.answers
                     if a.status == 202 and a.at >= moment - self.started]
        return round(min(times) - (moment - self.started), 2) if times else None

    def accepted(self) -> set[str]:
        with self._lock:
            return {a.job_id for a in self.answers if a.status == 202 and a.job_id}

    def told(self) -> set[str]:
        """Every job id a client was given (accepted, or named in a 503 as kept pending)."""
        with self._lock:
            return {a.job_id for a in self.answers if a.job_id}


def summarize(answers: list[Answer]) -> dict[str, dict[str, Any]]:
    """Per ``phase / endpoint``: answers by status, the slowest, and whether errors were JSON."""
    groups: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        groups[f"{answer.phase} | {answer.endpoint}"].append(answer)
    return {
        key: {
            "by_status": dict(sorted(Counter(str(a.status) for a in group).items())),
            "slowest_seconds": round(max(a.seconds for a in group), 3),
            "errors_all_json": all(a.is_json for a in group
                                   if a.status >= 400 and a.endpoint != "GET /"),
        }
        for key, group in sorted(groups.items())
    }


def readiness_timeline(samples: list[tuple[float, str, int]]) -> list[dict[str, Any]]:
    """The probe's answers as runs of the same status: ``[{from, to, status, phase, count}]``."""
    runs: list[dict[str, Any]] = []
    for at, phase, status in samples:
        if runs and runs[-1]["status"] == status and runs[-1]["phase"] == phase:
            runs[-1]["to"], runs[-1]["count"] = round(at, 1), runs[-1]["count"] + 1
        else:
            runs.append({"from": round(at, 1), "to": round(at, 1), "status": status,
                         "phase": phase, "count": 1})
    return runs


# ------------------------------------------------------------------------------ the services


@dataclass
class Services:
    cluster: LocalRabbitMQCluster
    database: pg.Primary
    database_processes: pg.Processes
    processes: ProcessSet
    web_port: int
    scratch: Path
    environment: dict[str, str] = field(default_factory=dict)


def _app_environment(cluster: LocalRabbitMQCluster, database_url: str,
                     scratch: Path) -> dict[str, str]:
    return app_environment(broker_url=cluster.broker_url(), database_url=database_url,
                           heartbeat_file=str(scratch / "worker-heartbeat"),
                           repository=str(REPOSITORY), METRICS_PORT="0")


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def _answers_http(port: int, path: str) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        return connection.getresponse().status == 200
    return False


def start_app(services: Services, log) -> None:  # type: ignore[no-untyped-def]
    from app.migrate import upgrade
    from app.settings import AppSettings

    upgrade(AppSettings(database_url=services.environment["DATABASE_URL"]).sqlalchemy_url)
    worker = services.processes.start("worker", [
        str(VENV_BIN / "celery"), "--app", "app.celery_app", "worker", "--queues", "small,large",
        "--concurrency", "2", "--hostname", "small@drill", "--loglevel", "INFO",
    ], services.environment)
    web = services.processes.start("web", [
        str(VENV_BIN / "gunicorn"), "--config", "python:app.gunicorn_conf",
        "app.web:create_app()",
    ], {**services.environment, "PORT": str(services.web_port), "WEB_CONCURRENCY": "2"})
    _wait(lambda: " ready." in worker.log() or not worker.alive(), 90, "the worker")
    if not worker.alive():
        raise RuntimeError(f"the worker exited:\n{worker.log()[-3000:]}")
    _wait(lambda: _answers_http(services.web_port, "/healthz") or not web.alive(), 60, "the web")
    if not web.alive():
        raise RuntimeError(f"the web app exited:\n{web.log()[-3000:]}")
    log(f"web on 127.0.0.1:{services.web_port}, worker ready")


def kill_postgres(services: Services) -> int:
    """SIGKILL the postmaster and every backend it forked: a crash, nothing flushed politely."""
    pid = int((services.database.data / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for victim in (pid, *map(int, children)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    _wait(lambda: not Path(f"/proc/{pid}").exists(), 10, "the postmaster to die")
    return pid


def restart_postgres(services: Services) -> None:
    data = services.database.data
    # The postmaster.pid of a killed server stays; pg_ctl sees its process is gone and starts
    # crash recovery, like the pod's container restarting on the same disk.
    services.database_processes.start_postgres(
        data, services.database.settings.port, services.scratch / "postgres-restart.log")


def job_states(database_url: str, ids: set[str]) -> dict[str, Any]:
    """Status counts of the given jobs and of every job; results stored for the given ones."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as connection:
        rows = connection.execute("SELECT id, status FROM lcs_jobs").fetchall()
        results = {row[0] for row in connection.execute("SELECT job_id FROM lcs_results")}
    statuses = dict(rows)
    return {
        "all": dict(Counter(statuses.values())),
        "ids": set(statuses),
        "accepted_with_result": len(ids & results),
        "accepted_missing": sorted(ids - set(statuses)),
        "accepted_statuses": dict(Counter(statuses.get(i, "missing") for i in ids)),
        "running": sorted(i for i, s in statuses.items() if s == "running"),
    }


# ------------------------------------------------------------------------------- scenarios


def database_scenario(services: Services, window: float, log) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    url = services.environment["DATABASE_URL"]
    with Load(services.web_port) as load:
        time.sleep(3)
        # Requests sent between the signal and the postmaster's death are neither before nor
        # during the outage: they get a phase of their own.
        load.phase = "being killed"
        killed = kill_postgres(services)
        killed_at = time.monotonic()
        load.phase = "database down"
        log(f"(a) PostgreSQL (postmaster {killed}) SIGKILLed; restarting in {window:g} s")
        time.sleep(window)
        restart_postgres(services)
        restarted_at = time.monotonic()
        load.phase = "after"
        log(f"(a) PostgreSQL started again after {restarted_at - killed_at:.1f} s")
        _await_accepted(load, restarted_at, timeout=60)
    accepted, finished_at, states = _settle(url, load, timeout=180)
    lost = [i for i in accepted if states["accepted_statuses"].get(i) != "succeeded"
            and i not in states["running"]]
    return {
        "window_seconds": round(restarted_at - killed_at, 1),
        "endpoints": summarize(load.answers),
        "readiness": readiness_timeline(load.readiness),
        "accepted_jobs": len(accepted),
        "results_stored": states["accepted_with_result"],
        "results_lost": len(accepted) - states["accepted_with_result"],
        "jobs_not_succeeded": lost,
        "jobs_left_running": len(states["running"]),
        "seconds_to_first_accepted_after_restart": load.first_accepted_after(restarted_at),
        "seconds_until_every_job_finished_after_restart": (
            round(finished_at - restarted_at, 1) if finished_at else None),
    }


def _await_accepted(load: Load, since: float, *, timeout: float) -> None:
    """Wait for the first submission accepted after ``since``, then a little more load."""
    _wait(lambda: load.first_accepted_after(since) is not None, timeout,
          "the first accepted submission after the dependency returned")
    time.sleep(2)


def _settle(url: str, load: Load, *, timeout: float
            ) -> tuple[set[str], float | None, dict[str, Any]]:
    """After the load: the accepted jobs, when they had all finished, and the jobs' states."""
    accepted = load.accepted()
    finished_at = _wait_for_jobs(url, accepted, timeout=timeout)
    return accepted, finished_at, job_states(url, accepted)


def _wait_for_jobs(url: str, ids: set[str], timeout: float) -> float | None:
    """Wait until every job in ``ids`` finished; returns when (monotonic), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            statuses = job_states(url, ids)["accepted_statuses"]
            if set(statuses) <= {"succeeded", "failed"}:
                return time.monotonic()
        time.sleep(0.5)
    return None


def broker_scenario(services: Services, window: float, log) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    url = services.environment["DATABASE_URL"]
    cluster = services.cluster
    names = [node.name for node in cluster.nodes]
    before_ids = job_states(url, set())["ids"]
    with Load(services.web_port) as load:
        time.sleep(3)
        down_at = time.monotonic()
        for name in names[1:]:
            cluster.kill(name)
        load.phase = "two of three nodes down"
        log(f"(b) killed {', '.join(names[1:])}")
        time.sleep(window / 2)
        cluster.kill(names[0])
        load.phase = "all nodes down"
        log(f"(b) killed {names[0]}: no broker node left")
        time.sleep(window / 2)
        load.phase = "nodes starting"
        for name in names:
            cluster.start(name)
        started_at = time.monotonic()
        for name in names:
            cluster.await_startup(name)
        load.phase = "after"
        log(f"(b) nodes running again {time.monotonic() - started_at:.1f} s after the start")
        _await_accepted(load, started_at, timeout=90)
    accepted, _, states = _settle(url, load, timeout=120)
    new_rows = states["ids"] - before_ids
    return {
        "window_seconds": round(started_at - down_at, 1),
        "endpoints": summarize(load.answers),
        "readiness": readiness_timeline(load.readiness),
        "accepted_jobs": len(accepted),
        # Rows no client was told about: a refused submission that left something behind.
        "half_created_jobs": len(new_rows - load.told()),
        "results_lost": len(accepted) - states["accepted_with_result"],
        "jobs_left_running": len(states["running"]),
        "seconds_to_first_accepted_after_start": load.first_accepted_after(started_at),
    }


# ---------------------------------------------------------------------------------- the run


def run_drill(window: float = 30.0, log=pg.progress) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    missing = prerequisites_missing()
    if missing:
        raise RuntimeError(missing)
    with pg.drill_workdir() as workdir, LocalRabbitMQCluster(size=3) as cluster:
        database_processes = pg.Processes(workdir)
        scratch = workdir / "app"
        scratch.mkdir()
        processes = ProcessSet(scratch)
        try:
            log("starting PostgreSQL (as deployed, TLS on) and a 3-node RabbitMQ cluster")
            database = pg.start_primary(workdir, database_processes)
            services = Services(cluster=cluster, database=database,
                                database_processes=database_processes, processes=processes,
                                web_port=free_port(), scratch=scratch)
            services.environment = _app_environment(cluster, database.app_url, scratch)
            start_app(services, log)
            report = {
                "window_seconds": window,
                "versions": {"rabbitmq": str(cluster.version), "postgresql": "15"},
                "database": database_scenario(services, window, log),
                "broker": broker_scenario(services, window, log),
            }
            report["goals"] = goals(report)
            return report
        except BaseException:
            for managed in processes.processes:
                log(f"--- {managed.name} (tail) ---\n{managed.log()[-3000:]}")
            raise
        finally:
            processes.stop_all()
            database_processes.stop_all()


def _endpoint(section: dict[str, Any], phase: str, endpoint: str) -> dict[str, Any]:
    return section["endpoints"].get(f"{phase} | {endpoint}", {"by_status": {},
                                                               "slowest_seconds": 0.0,
                                                               "errors_all_json": True})


def goals(report: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals, each checked against the measurements."""
    broker, database = report["broker"], report["database"]
    outage_phases = ("two of three nodes down", "all nodes down")

    def only(section, phase, endpoint, statuses) -> bool:  # type: ignore[no-untyped-def]
        counts = _endpoint(section, phase, endpoint)["by_status"]
        return bool(counts) and set(counts) <= set(statuses)

    def fast_json(section, phase, endpoint) -> bool:  # type: ignore[no-untyped-def]
        entry = _endpoint(section, phase, endpoint)
        return entry["slowest_seconds"] <= SUBMIT_BUDGET_SECONDS and entry["errors_all_json"]

    def ready(section, phases) -> bool:  # type: ignore[no-untyped-def]
        return all(run["status"] == 200 for run in section["readiness"]
                   if run["phase"] in phases)

    return {
        "broker down: GET / and GET /api/jobs 100 % 200": all(
            only(broker, phase, endpoint, {"200"}) for phase in outage_phases
            for endpoint in ("GET /", "GET /api/jobs")),
        "broker down: POST /api/jobs 503 JSON within 2 s": all(
            only(broker, phase, "POST /api/jobs", {"503"})
            and fast_json(broker, phase, "POST /api/jobs") for phase in outage_phases),
        "broker down: readiness stays ready": ready(broker, (*outage_phases, "nodes starting")),
        "broker down: 0 half-created jobs": broker["half_created_jobs"] == 0,
        "database killed: 0 results lost": database["results_lost"] == 0,
        "database killed: 0 jobs left running": database["jobs_left_running"] == 0,
        # A request sent in the last instant of the outage may be answered by the returning
        # database (200/202): never a 500, never a hang, and the outage itself answered 503.
        "database killed: API 503 JSON within 2 s, never 500": all(
            only(database, "database down", endpoint, {"200", "202", "503"})
            and _endpoint(database, "database down", endpoint)["by_status"].get("503", 0) > 0
            and fast_json(database, "database down", endpoint)
            for endpoint in ("GET /api/jobs", "POST /api/jobs")),
        "database killed: readiness stays ready": ready(database, ("database down", "after")),
        "database killed: everything completes after": (
            database["seconds_until_every_job_finished_after_restart"] is not None),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Window {report['window_seconds']:g} s; RabbitMQ {report['versions']['rabbitmq']}, "
             f"PostgreSQL {report['versions']['postgresql']}.", "",
             "| scenario | phase | endpoint | answers by status | slowest |",
             "|---|---|---|---|---|"]
    for scenario in ("database", "broker"):
        for key, entry in report[scenario]["endpoints"].items():
            phase, endpoint = key.split(" | ")
            statuses = ", ".join(f"{s}: {n}" for s, n in entry["by_status"].items())
            lines.append(f"| {scenario} | {phase} | `{endpoint}` | {statuses} | "
                         f"{entry['slowest_seconds']:.3f} s |")
    lines += ["", "| scenario | readiness (`/readyz`) over time |", "|---|---|"]
    for scenario in ("database", "broker"):
        runs = "; ".join(f"{r['from']:g}-{r['to']:g} s {r['phase']}: {r['status']} x{r['count']}"
                         for r in report[scenario]["readiness"])
        lines.append(f"| {scenario} | {runs} |")
    database, broker = report["database"], report["broker"]
    lines += ["", "| measure | database killed | broker down |", "|---|---|---|",
              f"| jobs accepted | {database['accepted_jobs']} | {broker['accepted_jobs']} |",
              f"| results lost | {database['results_lost']} | {broker['results_lost']} |",
              f"| jobs left `running` | {database['jobs_left_running']} | "
              f"{broker['jobs_left_running']} |",
              f"| half-created jobs | - | {broker['half_created_jobs']} |",
              f"| first accepted submission after the return | "
              f"{database['seconds_to_first_accepted_after_restart']} s | "
              f"{broker['seconds_to_first_accepted_after_start']} s |",
              f"| every accepted job finished after the return | "
              f"{database['seconds_until_every_job_finished_after_restart']} s | - |",
              "", "| goal | met |", "|---|---|"]
    lines += [f"| {goal} | {'yes' if met else '**no**'} |" for goal, met in report["goals"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills.degraded_dependencies",
        description="Kill PostgreSQL, then the broker, under load; report how the web tier and "
                    "the workers ride it out.")
    parser.add_argument("--window", type=float, default=30.0,
                        help="seconds each dependency stays down (default 30)")
    arguments = parser.parse_args(argv)
    if not 2 <= arguments.window <= 600:
        parser.error(f"--window must be 2..600 seconds, got {arguments.window:g}")
    missing = prerequisites_missing()
    if missing:
        print(json.dumps({"error": missing}))
        return 2
    try:
        report = run_drill(arguments.window)
    except Exception as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(report, indent=2, default=sorted))
    print(markdown(report), file=sys.stderr)
    return 0 if all(report["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
