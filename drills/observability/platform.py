"""The whole platform on 127.0.0.1, watched by a real Prometheus and Alertmanager.

Owns ``ObservedPlatform`` (a context manager) and ``DrillOptions``. It starts, from the files and
commands the platform deploys:

- a 3-node RabbitMQ cluster (``LocalRabbitMQCluster``: the generated rabbitmq.conf, the
  prometheus plugin on each node) and, at the same time, PostgreSQL with pghoard
  (``drills.postgres_backup``: the generated postgresql.conf, pg_hba.conf and pghoard.json);
- the monitoring role (``postgres_exporter.monitoring_role_sql``) and Debian's
  postgres_exporter with the sidecar's environment and flags, over the database's socket;
- the backup exporter (``pghoard/backup_metrics.py``, on pghoard's Python);
- the app: migrations, gunicorn with ``app.gunicorn_conf`` (two workers, metrics on their own
  port), one Celery worker per queue with the Deployment's command line, Flower with the
  Deployment's command line (its ``--purge_offline_workers`` shortened);
- the alert receiver, Alertmanager with the generated configuration pointing at it, and
  Prometheus with the generated scrape configurations and rule file (every ``for:`` scaled by
  ``DrillOptions.for_scale``);
- a light load: an LCS job through the web API every ``job_every_seconds`` and a row plus a WAL
  switch every ``wal_switch_every_seconds`` (so WAL is stored steadily, as on a busy database).

What differs from a cluster is only what one machine forces: addresses and ports, static scrape
addresses instead of pod discovery, the RabbitMQ and exporter versions Debian ships (reported),
and the thresholds/durations in ``DrillOptions``. Everything it starts is stopped on the way out.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from drills import postgres_backup
from drills.observability.receiver import WebhookReceiver
from drills.observability.services import (
    ALERTMANAGER,
    POSTGRES_EXPORTER,
    PROMETHEUS,
    DrillFailure,
    ProcessGroup,
    PrometheusApi,
    http_ok,
    wait_until,
)
from drills.rabbitmq_cluster import LocalRabbitMQCluster, free_ports
from infra.observability import alerts, postgres_exporter, routing, scrape
from infra.observability.sources import PlatformMetrics

REPOSITORY = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NAMESPACE = "drill"
SELECTOR = {"app.kubernetes.io/part-of": "ha-celery"}
"""Unused by static scrape configs; a target must name one."""


@dataclass(frozen=True, kw_only=True)
class DrillOptions:
    """The drill's knobs. The defaults keep the test to a few minutes."""

    for_scale: float = 0.05
    """Every ``for:`` times this (0.05: a 2-minute ``for:`` becomes 6 s)."""
    scrape_interval_seconds: int = 2
    evaluation_interval_seconds: int = 1
    wal_max_age_seconds: int = 30
    """BackupWalArchivingStalled's limit (production: 60 min). Above the WAL switch period."""
    small_queue_max_messages: int = 5
    """CeleryQueueBacklog's limit for ``small`` (production: 10,000)."""
    job_every_seconds: float = 0.7
    wal_switch_every_seconds: float = 5.0
    purge_offline_workers_seconds: int = 10
    """Flower's --purge_offline_workers (production: FLOWER_PURGE_OFFLINE_WORKERS_SECONDS)."""
    report_dir: Path = REPOSITORY / "build" / "drills" / "observability"

    def __post_init__(self) -> None:
        if not 0.001 <= self.for_scale <= 1:
            raise ValueError(f"for_scale: {self.for_scale} — use 0.001..1 (1 = production for:)")
        if not 1 <= self.scrape_interval_seconds <= 60:
            raise ValueError(f"scrape_interval_seconds: {self.scrape_interval_seconds} — 1..60")
        if self.wal_max_age_seconds <= 2 * self.wal_switch_every_seconds:
            raise ValueError(
                f"wal_max_age_seconds: {self.wal_max_age_seconds} — must exceed twice "
                f"wal_switch_every_seconds ({self.wal_switch_every_seconds}) or a healthy "
                "database would look stalled"
            )


def _clean_environment() -> dict[str, str]:
    prefixes = ("CELERY_", "DATABASE_", "LCS_", "RABBITMQ_", "ERL_", "PROMETHEUS_", "METRICS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _lcs_input(length: int) -> dict[str, str]:
    rng = random.Random()
    return {name: "".join(rng.choices(string.ascii_lowercase, k=length)) for name in "ab"}


@dataclass
class Load:
    """Background traffic; counts what it did."""

    submitted: int = 0
    accepted: list[tuple[float, str]] = field(default_factory=list)
    """(wall time, queue) of every job the web app accepted, the drill's own included."""
    rejected: int = 0
    failed: int = 0
    wal_switches: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


class ObservedPlatform:
    """``with ObservedPlatform(options, log=print) as platform:`` starts everything."""

    def __init__(self, options: DrillOptions, *, log=print) -> None:
        self.options = options
        self.log = log
        self.scratch = Path(tempfile.mkdtemp(prefix="hacelery-obs-drill-"))
        self.group = ProcessGroup(self.scratch)
        self.load = Load()
        self._stack = contextlib.ExitStack()
        self._threads: list[threading.Thread] = []
        self.cluster: LocalRabbitMQCluster | None = None

    # ------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> ObservedPlatform:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self._stop()

    def _stop(self) -> None:
        self.load.stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self.group.stop_all()
        self._stack.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def leftover_processes(self) -> list[str]:
        alive = [m.name for m in self.group.started.values() if m.alive()]
        if self.cluster is not None:
            alive += [f"rabbitmq pid {pid}" for pid in self.cluster.leftover_processes()]
        return alive

    def _start(self) -> None:
        missing = postgres_backup.prerequisites_missing()
        if missing:
            raise DrillFailure(missing)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            # The broker cluster forms (~30 s) while PostgreSQL and pghoard start.
            cluster = LocalRabbitMQCluster(3)
            self.cluster = cluster
            forming = pool.submit(cluster.__enter__)
            self._stack.callback(cluster.stop_all)
            self._start_database()
            forming.result()
        self.rabbitmq_version = str(cluster.version)
        self.log(f"RabbitMQ {cluster.version} x3 and PostgreSQL 15 + pghoard "
                 f"{postgres_backup.PGHOARD_VERSION} running")
        self.metrics = PlatformMetrics(rabbitmq_version=cluster.version, broker_replicas=3,
                                       keda_enabled=False)
        self.thresholds = alerts.AlertThresholds(
            wal_max_age_seconds=self.options.wal_max_age_seconds,
            queue_limits=(alerts.QueueLimits(queue="small",
                                             max_messages=self.options.small_queue_max_messages),),
        )
        self.rules = {r.name: r for r in alerts.alert_rules(self.metrics, self.thresholds)}
        self._start_exporters()
        self._start_app()
        self._start_alerting()
        self._start_load()

    # --------------------------------------------------------------------------- database

    def _start_database(self) -> None:
        workdir = self._stack.enter_context(postgres_backup.drill_workdir())
        self.pg_workdir = workdir
        self.pg = postgres_backup.Processes(workdir)
        self._stack.callback(self.pg.stop_all)
        self.primary = postgres_backup.start_primary(workdir, self.pg)
        self.monitor = postgres_exporter.PostgresExporterArgs(
            password=_unused_secret_ref(), socket_dir=str(self.primary.socket_dir),
            database_port=self.primary.settings.port, port=free_ports(1)[0],
        )
        self.monitor_password = "DrillMonitor" + os.urandom(8).hex()
        self.pg.run(["psql", "-v", "ON_ERROR_STOP=1", "-v",
                     f"monitor_password={self.monitor_password}", "postgres"],
                    input=postgres_exporter.monitoring_role_sql(self.monitor))
        self.pghoard, self.pghoard_process, _ = postgres_backup.start_pghoard(
            workdir, self.pg, self.primary)

    def stop_pghoard(self) -> float:
        stopped = time.time()
        self.pg.stop(self.pghoard_process)
        return stopped

    def start_pghoard(self) -> None:
        self.pghoard_process = self.pg.start(self.pghoard.command, self.pghoard.log)

    def switch_wal(self) -> None:
        self.pg.run(["psql", "-XAtc", "CREATE TABLE IF NOT EXISTS drill_wal (at timestamptz); "
                     "INSERT INTO drill_wal VALUES (now())", "postgres"])
        self.pg.run(["psql", "-XAtc", "SELECT pg_switch_wal()", "postgres"])

    # -------------------------------------------------------------------------- exporters

    def _start_exporters(self) -> None:
        environment = {**_clean_environment(),
                       **postgres_exporter.exporter_environment(self.monitor),
                       "DATA_SOURCE_PASS": self.monitor_password}
        # The sidecar's flags; only the listen address is narrowed to the loopback.
        arguments = [a if not a.startswith("--web.listen-address=")
                     else f"--web.listen-address=127.0.0.1:{self.monitor.port}"
                     for a in postgres_exporter.exporter_arguments(self.monitor)]
        self.group.start("postgres-exporter", [POSTGRES_EXPORTER, *arguments], environment)
        self.backup_metrics_port = free_ports(1)[0]
        self.group.start(
            "backup-metrics",
            [self.pghoard.python, str(REPOSITORY / "pghoard" / "backup_metrics.py"), "--config",
             str(self.pghoard.config_path), "--port", str(self.backup_metrics_port),
             "--address", "127.0.0.1"],
            _clean_environment(),
        )

    # -------------------------------------------------------------------------------- app

    def app_environment(self, name: str) -> dict[str, str]:
        assert self.cluster is not None
        return {
            **_clean_environment(),
            "CELERY_BROKER_URL": self.cluster.broker_url(),
            "DATABASE_URL": self.primary.app_url,
            "CELERY_HEARTBEAT_FILE": str(self.scratch / f"{name}-heartbeat"),
            "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "2",
            "PYTHONPATH": str(REPOSITORY),
            "PYTHONUNBUFFERED": "1",
        }

    def _runtime(self):
        from infra.celery import AppRuntimeArgs, SecretKeyRef

        return AppRuntimeArgs(namespace=NAMESPACE, image="drill.invalid/ha-celery:local",
                              broker_url=SecretKeyRef(name="rabbitmq-broker", key="url"))

    def worker_command(self, queue: str) -> list[str]:
        from infra.celery import WorkerPoolArgs, worker_command

        command = worker_command(WorkerPoolArgs(runtime=self._runtime(), queue=queue,
                                                concurrency=1))
        command[0] = str(VENV_BIN / "celery")
        command[command.index("--hostname") + 1] = f"{queue}@drill-{queue}"
        return command

    def start_worker(self, queue: str) -> None:
        name = f"worker-{queue}"
        worker = self.group.start(name, self.worker_command(queue), self.app_environment(name),
                                  cwd=REPOSITORY)
        wait_until(lambda: " ready." in worker.log_tail(20000) or not worker.alive(),
                   timeout=90, what=f"{name} to be ready")
        if not worker.alive():
            raise DrillFailure(f"{name} exited:\n{worker.log_tail()}")

    def stop_worker(self, queue: str) -> float:
        stopped = time.time()
        self.group.stop(f"worker-{queue}", grace=15)
        return stopped

    def _start_app(self) -> None:
        from infra.flower import FlowerArgs, flower_command

        migrate = subprocess.run([str(VENV_BIN / "python"), "-m", "app.migrate"],
                                 env=self.app_environment("migrate"), cwd=REPOSITORY,
                                 capture_output=True, text=True, timeout=120)
        if migrate.returncode != 0:
            raise DrillFailure(f"app.migrate failed: {migrate.stderr}")
        self.web_port, self.web_metrics_port, self.flower_port = free_ports(3)
        web_env = {**self.app_environment("web"), "WEB_CONCURRENCY": "2",
                   "METRICS_PORT": str(self.web_metrics_port), "METRICS_ADDRESS": "127.0.0.1",
                   "PROMETHEUS_MULTIPROC_DIR": str(self.scratch / "web-metrics")}
        self.group.start("web", [str(VENV_BIN / "gunicorn"), "--config",
                                 "python:app.gunicorn_conf", "--bind",
                                 f"127.0.0.1:{self.web_port}", "app.web:create_app()"],
                         web_env, cwd=REPOSITORY)
        flower = flower_command(FlowerArgs(
            runtime=self._runtime(),
            purge_offline_workers_seconds=self.options.purge_offline_workers_seconds))
        flower = [str(VENV_BIN / "celery"), *flower[1:]]
        flower = [a for a in flower if not a.startswith("--port=")] + [
            f"--port={self.flower_port}", "--address=127.0.0.1"]
        self.group.start("flower", flower, self.app_environment("flower"), cwd=REPOSITORY)
        for queue in self.metrics.worker_queues:
            self.start_worker(queue)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.web_port}/healthz"), timeout=60,
                   what="the web app")
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.flower_port}/healthcheck"),
                   timeout=60, what="Flower")

    # ---------------------------------------------------------------------------- alerting

    def scrape_configs(self) -> list[dict]:
        assert self.cluster is not None
        interval = self.options.scrape_interval_seconds
        common = {"namespace": NAMESPACE, "selector": SELECTOR, "interval_seconds": interval}
        nodes, queues = scrape.rabbitmq_targets(rabbitmq=self.metrics.rabbitmq, **common)
        brokers = [f"127.0.0.1:{node.prometheus_port}" for node in self.cluster.nodes]
        return [
            scrape.static_scrape_config(nodes, brokers),
            scrape.static_scrape_config(queues, brokers),
            scrape.static_scrape_config(scrape.flower_target(**common),
                                        [f"127.0.0.1:{self.flower_port}"]),
            scrape.static_scrape_config(scrape.web_target(**common),
                                        [f"127.0.0.1:{self.web_metrics_port}"]),
            scrape.static_scrape_config(scrape.postgres_target(**common),
                                        [f"127.0.0.1:{self.monitor.port}"]),
            scrape.static_scrape_config(scrape.backup_target(**common),
                                        [f"127.0.0.1:{self.backup_metrics_port}"]),
        ]

    def _start_alerting(self) -> None:
        options = self.options
        files = self.options.report_dir
        files.mkdir(parents=True, exist_ok=True)
        self.receiver = self._stack.enter_context(WebhookReceiver())
        self.routing = routing.AlertRoutingArgs(
            webhook_urls=(self.receiver.url,), group_wait_seconds=0, group_interval_seconds=1,
            repeat_interval_seconds=3600, critical_repeat_interval_seconds=3600,
        )
        am_yaml = routing.render_alertmanager_yaml(routing.alertmanager_config(self.routing),
                                                   self.routing)
        (files / "alertmanager.yml").write_text(am_yaml)
        rules = alerts.rule_groups(list(self.rules.values()), for_scale=options.for_scale,
                                   evaluation_interval_seconds=options.evaluation_interval_seconds)
        (files / "rules.yml").write_text(alerts.render_rules_yaml(rules))
        am_port, prom_port = free_ports(2)
        self.group.start("alertmanager", [
            ALERTMANAGER, f"--config.file={files / 'alertmanager.yml'}",
            f"--storage.path={self.scratch / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
            "--log.level=warn"], _clean_environment())
        wait_until(lambda: http_ok(f"http://127.0.0.1:{am_port}/-/ready"), timeout=30,
                   what="Alertmanager")
        def write_config(rule_files: list[str]) -> None:
            config = scrape.prometheus_config(
                self.scrape_configs(), rule_files=rule_files,
                alertmanagers=[f"127.0.0.1:{am_port}"],
                scrape_interval_seconds=options.scrape_interval_seconds,
                evaluation_interval_seconds=options.evaluation_interval_seconds)
            (files / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

        # Rules are loaded once every target has been scraped: Prometheus discovers even static
        # targets only a few seconds after it starts, and a 6-second for: (production's 2 min
        # scaled) would otherwise fire on that start-up gap, which a real deployment never sees.
        write_config([])
        prometheus = self.group.start("prometheus", [
            PROMETHEUS, f"--config.file={files / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.scratch / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            _clean_environment())
        url = f"http://127.0.0.1:{prom_port}"
        wait_until(lambda: http_ok(f"{url}/-/ready"), timeout=60, what="Prometheus")
        self.prometheus = PrometheusApi(url)
        wait_until(lambda: self.prometheus.targets() and not self.prometheus.unhealthy_targets(),
                   timeout=120, what="every scrape target up")
        write_config([str(files / "rules.yml")])
        prometheus.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.prometheus.rule_groups(), timeout=30, what="the rules loaded")
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"

    # -------------------------------------------------------------------------------- load

    def submit_job(self, queue: str) -> int:
        """POST an LCS job sized for ``queue`` (the app routes by size); returns the status."""
        status = self._post(_lcs_input(1200 if queue == "large" else 40))
        if status == 202:
            self.load.accepted.append((time.time(), queue))
        return status

    def submit_invalid(self) -> int:
        return self._post({"a": 1, "b": "x"})

    def _post(self, body: dict) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/jobs", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def _start_load(self) -> None:
        def jobs() -> None:
            queues = itertools.cycle(["small", "large"])
            self.submit_invalid()
            self.load.rejected += 1
            while not self.load.stop.wait(self.options.job_every_seconds):
                if self.submit_job(next(queues)) == 202:
                    self.load.submitted += 1
                else:
                    self.load.failed += 1

        def wal() -> None:
            while not self.load.stop.wait(self.options.wal_switch_every_seconds):
                with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                    self.switch_wal()
                    self.load.wal_switches += 1

        for target in (jobs, wal):
            thread = threading.Thread(target=target, name=f"load-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)


def _unused_secret_ref():
    """The drill passes the password by environment; the sidecar's Secret reference is unused."""
    from infra.celery import SecretKeyRef

    return SecretKeyRef(name="postgres-credentials", key="monitor-password")

