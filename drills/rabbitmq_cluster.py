"""A real N-node RabbitMQ cluster on 127.0.0.1, booted from the files the platform deploys.

Owns `LocalRabbitMQCluster`: a context manager that starts Debian's rabbitmq-server nodes with
`rabbitmq.conf`, `enabled_plugins`, the definitions and the default-user snippet produced by
`infra/rabbitmq_config/` (the same functions the Kubernetes component calls). What differs from
a pod is only what one machine forces: ports (free ones, so the machine's own broker on
5672/4369/15672/25672 and parallel runs are untouched), node names, paths, a private epmd, and
classic_config peer discovery listing the local nodes instead of the Kubernetes backend. Sizes
(memory watermark, disk limit) are scaled to the machine.

It offers what failover drills need: AMQP URLs per node, the quorum leader of a queue, SIGKILL of
a node's beam process, restart, freezing a node (SIGSTOP: it stops answering, its kernel still
accepts connections), waiting for a node to rejoin (with the pod's own startup check), whether
the cluster has converged (every node running, no partition, every quorum queue with all its
members online), a rolling restart the way a StatefulSet does it (preStop drain, stop, start,
wait), and `stop_all()` that leaves no process behind (nodes, CLI helpers, epmd) even when a
test fails.

Where the nodes live is the one thing a subclass changes: this class runs them on 127.0.0.1
with free ports and one private epmd; `drills.netns_cluster.NamespacedRabbitMQCluster` runs each
in its own network namespace (its own address, the standard ports, its own epmd). The hooks are
`_plan_nodes`, `node_command`, `_network_environment`, `_listeners` and `_start_epmd` /
`_stop_epmd`; everything else (files, start order, checks, faults) is shared.

With ``tls=True`` the nodes run the deployed TLS config: certificates issued by
``drills.certificates`` from the stack's RabbitMQ certificate spec (plus this machine's node
host names and client addresses), AMQPS and management HTTPS for clients, and, unless
``inter_node_tls=False``, Erlang distribution and every CLI tool over mutual TLS (the
generator's option file and flags). ``amqp_endpoint``/``client_environment`` give clients what
they need to verify the nodes.

It does not run Kubernetes, Docker or a 4.x image: the version it ran is `cluster.version`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from drills import certificates
from infra import rabbitmq_config as config
from infra.certificates import CertificateSpec, rabbitmq_spec

RABBITMQ_BIN = Path(os.environ.get("HACELERY_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
RABBITMQ_LIB_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"

DRILL_VHOST = "hacelery-drill"
DRILL_ADMIN = "drill-admin"
DRILL_APP_USER = "drill-app"


class DrillError(RuntimeError):
    """The local cluster did not reach the state a drill step waits for."""


def installed_version() -> config.RabbitMQVersion:
    """The RabbitMQ release installed on this machine (Debian 12: 3.10.8)."""
    found = sorted(glob.glob(RABBITMQ_LIB_GLOB))
    if not found or not (RABBITMQ_BIN / "rabbitmq-server").exists():
        raise DrillError(
            "rabbitmq-server is not installed: run scripts/prereq.d/20-rabbitmq-drill.sh "
            "(apt-get install -y rabbitmq-server)"
        )
    return config.RabbitMQVersion.parse(found[-1].rsplit("-", 1)[-1])


def free_ports(count: int) -> list[int]:
    """Distinct ports free on 127.0.0.1 right now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class LocalNode:
    name: str
    """Erlang node name, e.g. ``rmq1@localhost``."""
    amqp_port: int
    dist_port: int
    management_port: int
    prometheus_port: int
    directory: Path
    amqp_host: str = "127.0.0.1"
    """Where clients reach the node's AMQP listener."""
    host: str | None = None
    """The lab host (network namespace) the node runs in; None: this machine's own network."""
    amqps_port: int = config.AMQPS_PORT
    management_tls_port: int = config.MANAGEMENT_TLS_PORT
    prometheus_tls_port: int = config.PROMETHEUS_TLS_PORT


@dataclass(frozen=True)
class Convergence:
    """Whether the cluster is whole again, and if not, what is still missing."""

    converged: bool
    problems: tuple[str, ...] = ()


class LocalRabbitMQCluster:
    """Start ``size`` clustered nodes on 127.0.0.1; use as ``with LocalRabbitMQCluster() as c:``."""

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: str | os.PathLike | None = None,
        poison: config.PoisonMessagePolicy | None = None,
        startup_timeout: float = 90.0,
        keep_files: bool = False,
        broker_overrides: dict[str, object] | None = None,
        tls: bool = False,
        inter_node_tls: bool | None = None,
    ) -> None:
        if size < 1 or size % 2 == 0:
            raise ValueError(f"size: {size} — use an odd number of nodes (1, 3, 5)")
        self.size = size
        self.version = installed_version()
        self.poison = poison or config.PoisonMessagePolicy()
        self.startup_timeout = startup_timeout
        self.keep_files = keep_files
        self.broker_overrides = dict(broker_overrides or {})
        """``BrokerSettings`` fields that differ from the deployed config (comparison runs
        only; every drill says which it used)."""
        self.tls = tls
        """Clients over AMQPS (and management over HTTPS) with certificates from
        ``drills.certificates``, issued from the stack's RabbitMQ certificate spec."""
        self.inter_node_tls = tls if inter_node_tls is None else inter_node_tls
        """Erlang distribution (and the CLI tools) over mutual TLS; defaults to ``tls``."""
        if self.inter_node_tls and not self.tls:
            raise ValueError("inter_node_tls needs tls=True (the same certificates)")
        self.authority: certificates.LocalAuthority | None = None
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="hacelery-rmq-drill-"))
        self.admin_password = os.urandom(12).hex()
        self.app_password = os.urandom(12).hex()
        self.epmd_port = 0
        self.nodes: list[LocalNode] = self._plan_nodes()
        self._processes: dict[str, subprocess.Popen] = {}
        self._epmds: list[subprocess.Popen] = []

    # ----------------------------------------------------------------------- network hooks

    def _plan_nodes(self) -> list[LocalNode]:
        """Names, ports and directories of the nodes (here: free ports on 127.0.0.1)."""
        per_node = 7
        ports = free_ports(1 + per_node * self.size)
        self.epmd_port = ports[0]
        return [
            LocalNode(
                name=f"rmq{index + 1}@localhost",
                amqp_port=ports[1 + per_node * index],
                dist_port=ports[2 + per_node * index],
                management_port=ports[3 + per_node * index],
                prometheus_port=ports[4 + per_node * index],
                amqps_port=ports[5 + per_node * index],
                management_tls_port=ports[6 + per_node * index],
                prometheus_tls_port=ports[7 + per_node * index],
                directory=self.base_dir / f"rmq{index + 1}",
            )
            for index in range(self.size)
        ]

    def node_command(self, name: str, argv: list[str]) -> list[str]:
        """``argv`` run where node ``name`` lives (here: directly on this machine)."""
        return argv

    def _network_environment(self, node: LocalNode) -> dict[str, str]:
        """Addresses and ports the node and its CLI tools use on this machine."""
        return {
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            # Without it the distribution port listens on every interface.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _listeners(self, node: LocalNode) -> config.Listeners:
        return config.Listeners(
            amqp_port=node.amqp_port,
            management_port=node.management_port,
            prometheus_port=node.prometheus_port,
            bind_address="127.0.0.1",
        )

    def _start_epmd(self) -> None:
        """One private epmd on 127.0.0.1 for every node (the machine's own stays untouched)."""
        self._epmds.append(
            subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def _stop_epmd(self) -> None:
        for epmd in self._epmds:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(epmd.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                epmd.wait(timeout=10)
        self._epmds.clear()

    # ----------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalRabbitMQCluster:
        try:
            self.start_cluster()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    def start_cluster(self) -> None:
        """Write every node's files, start a private epmd, the seed node, then the rest."""
        self._write_files()
        self._start_epmd()
        # The first node forms the cluster alone; the others then find it running and join it
        # (starting all at once can let two blank nodes each form their own cluster on 3.10).
        self.start(self.nodes[0].name)
        self.await_startup(self.nodes[0].name)
        for node in self.nodes[1:]:
            self.start(node.name)
        for node in self.nodes[1:]:
            self.await_startup(node.name)
        for node in self.nodes:
            self.await_rejoined(node.name)

    def stop_all(self) -> None:
        """SIGKILL every process this cluster started (node trees, epmd); remove its files."""
        for name in list(self._processes):
            self._kill_tree(name)
        self._stop_epmd()
        # CLI tools started with our HOME/epmd port are children that exited already; anything
        # else still pointing at our directory is a leak and is killed here.
        for pid in self.leftover_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._own_base and not self.keep_files:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def leftover_processes(self) -> list[int]:
        """PIDs of live processes whose command line or environment mentions this cluster."""
        marker = str(self.base_dir).encode()
        epmd_marker = f"ERL_EPMD_PORT={self.epmd_port}".encode() if self.epmd_port else marker
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes()
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if state == "Z":
                continue
            epmd_cmd = (
                bool(self.epmd_port) and b"epmd" in cmdline
                and str(self.epmd_port).encode() in cmdline
            )
            if marker in cmdline or marker in environ or epmd_marker in environ or epmd_cmd:
                found.append(int(proc.name))
        return found

    # ------------------------------------------------------------------------------- files

    def settings_for(self, node: LocalNode) -> config.BrokerSettings:
        return config.BrokerSettings(
            version=self.version,
            cluster_name="hacelery-drill",
            peer_discovery=config.ClassicConfigPeerDiscovery(
                nodes=tuple(other.name for other in self.nodes)
            ),
            target_cluster_size=self.size,
            memory_high_watermark_bytes=1024 * 2**20,
            disk_free_limit_bytes=200 * 10**6,
            definitions_path=str(node.directory / "secret" / "definitions.json"),
            listeners=self._listeners(node),
            tls=self.broker_tls(node),
            **self.broker_overrides,
        )

    def _plain_amqp_on_loopback(self) -> bool:
        """Here every listener is on 127.0.0.1, where the clients are too: a plain listener
        would be reachable by them, so with TLS there is none (a pod keeps one on its own
        loopback, which nothing outside the pod reaches; the namespaced lab does the same)."""
        return False

    def broker_tls(self, node: LocalNode) -> config.BrokerTls | None:
        if not self.tls:
            return None
        tls_dir = self.base_dir / "tls"
        return config.BrokerTls(
            certificate_file=str(tls_dir / "rabbitmq.crt"),
            key_file=str(tls_dir / "rabbitmq.key"),
            ca_file=str(tls_dir / "ca.crt"),
            amqps_port=node.amqps_port,
            management_tls_port=node.management_tls_port,
            prometheus_tls_port=node.prometheus_tls_port,
            loopback_plain_amqp=self._plain_amqp_on_loopback(),
            inter_node=self.inter_node_tls,
        )

    def certificate_spec(self) -> CertificateSpec:
        """The stack's RabbitMQ certificate spec, plus the names nodes and clients use here
        (node host names and client addresses stand for the pods' DNS names)."""
        spec = rabbitmq_spec(namespace="drill", statefulset="rabbitmq",
                             headless_service="rabbitmq-nodes", client_service="rabbitmq",
                             replicas=self.size)
        hosts = {node.name.split("@", 1)[1] for node in self.nodes} - set(spec.dns_names)
        addresses = {node.amqp_host for node in self.nodes} - set(spec.ip_addresses)
        return dataclasses.replace(spec, dns_names=(*spec.dns_names, *sorted(hosts)),
                                   ip_addresses=(*spec.ip_addresses, *sorted(addresses)))

    @property
    def ca_file(self) -> Path:
        """The CA every client of this cluster must trust (TLS only)."""
        if self.authority is None:
            raise DrillError("this cluster runs without TLS: there is no CA")
        return self.authority.ca_certificate

    def _write_tls_files(self) -> None:
        self.authority = certificates.issue([self.certificate_spec()], self.base_dir / "tls")
        for node in self.nodes:
            tls = self.broker_tls(node)
            assert tls is not None
            (node.directory / "inter_node_tls.config").write_text(
                config.inter_node_tls_config(tls))
            (node.directory / "rabbitmq-env.conf").write_text(
                config.rabbitmq_env_conf(tls, str(node.directory / "inter_node_tls.config")))

    def _write_files(self) -> None:
        home = self.base_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(os.urandom(20).hex())
        cookie.chmod(0o400)
        (self.base_dir / "empty-env.conf").write_text("")
        definitions = config.definitions_json(
            version=self.version,
            vhost=DRILL_VHOST,
            admin_username=DRILL_ADMIN,
            admin_password=self.admin_password,
            app_username=DRILL_APP_USER,
            app_password=self.app_password,
            poison=self.poison,
        )
        for node in self.nodes:
            settings = self.settings_for(node)
            confd = node.directory / "conf.d"
            secret = node.directory / "secret"
            for directory in (confd, secret, node.directory / "data", node.directory / "log"):
                directory.mkdir(parents=True, exist_ok=True)
            # Same layout as the pod's conf.d: cluster conf, then the secret default user.
            (confd / "10-rabbitmq.conf").write_text(config.rabbitmq_conf(settings))
            (confd / "20-default-user.conf").write_text(
                config.default_user_conf(DRILL_ADMIN, self.admin_password)
            )
            (node.directory / "enabled_plugins").write_text(config.enabled_plugins(settings))
            (secret / "definitions.json").write_text(definitions)
        if self.tls:
            self._write_tls_files()

    # ------------------------------------------------------------------------- environment

    def node(self, name: str) -> LocalNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in this cluster ({[n.name for n in self.nodes]})")

    def environment(self, name: str) -> dict[str, str]:
        """What a node (and the CLI tools aimed at it) need on this machine."""
        node = self.node(name)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            PATH=f"{RABBITMQ_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            HOME=str(self.base_dir / "home"),
            LC_ALL="C.UTF-8",
            LANG="C.UTF-8",
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "empty-env.conf"),
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_PORT=str(node.amqp_port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_MNESIA_BASE=str(node.directory / "data"),
            RABBITMQ_LOG_BASE=str(node.directory / "log"),
            # The machine's /etc/rabbitmq/rabbitmq.conf would be read too (and its listeners win).
            RABBITMQ_CONFIG_FILE=str(node.directory / "no-machine-config.conf"),
            RABBITMQ_CONFIG_FILES=str(node.directory / "conf.d"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(node.directory / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(node.directory / "beam.pid"),
        )
        env.update(self._network_environment(node))
        if self.inter_node_tls:
            # The node and every CLI tool speak TLS distribution, with the generator's flags
            # (in a pod they come from rabbitmq-env.conf; here the environment already sets
            # SERVER_ADDITIONAL_ERL_ARGS for the interface, and an environment value wins).
            flags = config.distribution_erl_args(str(node.directory / "inter_node_tls.config"))
            additional = env.get("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "")
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = f"{additional} {flags}".strip()
            env["RABBITMQ_CTL_ERL_ARGS"] = flags
        return env

    def cli(
        self, tool: str, name: str, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run a RabbitMQ CLI tool against node ``name``."""
        result = subprocess.run(
            self.node_command(name, [str(RABBITMQ_BIN / tool), "-n", name, *args]),
            env=self.environment(name),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        if check and result.returncode != 0:
            raise DrillError(
                f"{tool} {' '.join(args)} on {name} exited {result.returncode}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    # ------------------------------------------------------------------------------ nodes

    def start(self, name: str) -> None:
        node = self.node(name)
        if name in self._processes and self._processes[name].poll() is None:
            raise DrillError(f"{name} is already running")
        log = open(node.directory / "log" / "stdout.log", "ab")  # noqa: SIM115 (owned by Popen)
        self._processes[name] = subprocess.Popen(
            self.node_command(name, [str(RABBITMQ_BIN / "rabbitmq-server")]),
            env=self.environment(name),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def await_startup(self, name: str, timeout: float | None = None) -> None:
        timeout = timeout or self.startup_timeout
        deadline = time.monotonic() + timeout
        process = self._processes.get(name)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise DrillError(f"{name} exited with {process.returncode}: {self._log_tail(name)}")
            result = self.cli("rabbitmqctl", name, "await_startup", "--timeout", "10",
                              check=False, timeout=30)
            if result.returncode == 0:
                return
            time.sleep(0.5)
        raise DrillError(f"{name} did not start within {timeout:.0f} s: {self._log_tail(name)}")

    def _log_tail(self, name: str) -> str:
        path = self.node(name).directory / "log" / "stdout.log"
        with contextlib.suppress(OSError):
            return path.read_text(errors="replace")[-2000:]
        return "(no log)"

    def beam_pid(self, name: str) -> int:
        return int((self.node(name).directory / "beam.pid").read_text().strip())

    def kill(self, name: str) -> float:
        """SIGKILL the node's beam process (a crash, no shutdown); returns the kill time."""
        pid = self.beam_pid(name)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        self._kill_tree(name)
        return killed_at

    def freeze(self, name: str) -> float:
        """SIGSTOP every process of the node (a stalled VM): it stops answering, but its kernel
        still accepts connections and acknowledges TCP, so no client sees a reset. Returns the
        time of the freeze (``time.time()``)."""
        process = self._processes.get(name)
        if process is None or process.poll() is not None:
            raise DrillError(f"{name} is not running; nothing to freeze")
        os.killpg(process.pid, signal.SIGSTOP)
        return time.time()

    def resume(self, name: str) -> float:
        """SIGCONT what :meth:`freeze` stopped; returns the time (``time.time()``)."""
        process = self._processes.get(name)
        if process is None:
            raise DrillError(f"{name} was never started; nothing to resume")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
        return time.time()

    def _kill_tree(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)

    def stop(self, name: str, timeout: float = 60.0) -> None:
        """A clean stop (what SIGTERM does to the container after preStop)."""
        process = self._processes.get(name)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
            # A frozen node only acts on SIGTERM once it runs again.
            os.killpg(process.pid, signal.SIGCONT)
        try:
            process.wait(timeout=timeout)
        finally:
            self._kill_tree(name)

    def is_running(self, name: str) -> bool:
        process = self._processes.get(name)
        return process is not None and process.poll() is None

    def running_nodes(self, via: str) -> list[str]:
        result = self.cli("rabbitmq-diagnostics", via, "cluster_status", "--formatter", "json")
        return sorted(json.loads(result.stdout)["running_nodes"])

    def _running_nodes_or_empty(self, via: str) -> list[str]:
        try:
            return self.running_nodes(via)
        except (DrillError, subprocess.TimeoutExpired, ValueError, KeyError):
            return []

    def await_rejoined(self, name: str, timeout: float | None = None) -> float:
        """Wait until ``name`` runs, passes the pod's startup check and every live node sees it.

        Returns the seconds waited.
        """
        timeout = timeout or self.startup_timeout
        started = time.monotonic()
        deadline = started + timeout
        self.await_startup(name, timeout)
        check = config.startup_check_script(version=self.version, expected_members=self.size)
        last = ""
        while time.monotonic() < deadline:
            result = subprocess.run(
                self.node_command(name, ["bash", "-c", check]), env=self.environment(name),
                capture_output=True, text=True, timeout=60, start_new_session=True,
            )
            if result.returncode == 0:
                live = [n.name for n in self.nodes if self.is_running(n.name)]
                # A node that is paused (pause_minority) or restarting (autoheal) answers with
                # an error until it runs again: that is "not yet", not a failure.
                if all(name in self._running_nodes_or_empty(other) for other in live):
                    return time.monotonic() - started
                last = "not yet seen by every running node"
            else:
                last = result.stderr.strip() or result.stdout.strip()
            time.sleep(0.5)
        raise DrillError(f"{name} did not rejoin within {timeout:.0f} s: {last}")

    def convergence(self, timeout: float = 5.0) -> Convergence:
        """Is the cluster whole: every node running, no node reporting a partition, and every
        quorum queue with all ``size`` members online? Lists what is not (CLI timeouts count as
        "not yet": a frozen or partitioned node makes queries through it time out)."""
        names = [node.name for node in self.nodes]
        problems: list[str] = []
        for name in names:
            if not self.is_running(name):
                problems.append(f"{name}: not running")
                continue
            try:
                status = self.cli("rabbitmq-diagnostics", name, "cluster_status", "--formatter",
                                  "json", "--timeout", f"{timeout:g}", check=False,
                                  timeout=timeout + 30)
            except subprocess.TimeoutExpired:
                problems.append(f"{name}: cluster_status did not answer")
                continue
            try:
                data = json.loads(status.stdout)
                running, partitions = set(data["running_nodes"]), data.get("partitions") or {}
            except (ValueError, KeyError, TypeError):
                problems.append(f"{name}: cluster_status failed ({_first_line(status)})")
                continue
            if running != set(names):
                problems.append(f"{name}: sees running {sorted(running)}")
            if partitions:
                problems.append(f"{name}: reports partitions {partitions}")
        if problems:
            return Convergence(converged=False, problems=tuple(problems))
        try:
            listing = self.cli("rabbitmqctl", names[0], "list_queues", "-p", DRILL_VHOST, "name",
                               "type", "members", "online", "--formatter", "json", "--timeout",
                               f"{timeout:g}", check=False, timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            return Convergence(converged=False, problems=("list_queues did not answer",))
        try:
            queues = json.loads(listing.stdout)
        except ValueError:
            queues = None
        if listing.returncode != 0 or not isinstance(queues, list):
            return Convergence(converged=False,
                               problems=(f"list_queues failed ({_first_line(listing)})",))
        for queue in queues:
            if queue.get("type") != "quorum":
                continue
            members, online = set(queue.get("members") or ()), set(queue.get("online") or ())
            if len(members) < self.size:
                problems.append(f"queue {queue['name']}: {len(members)} of {self.size} members")
            if online != members:
                problems.append(
                    f"queue {queue['name']}: offline members {sorted(members - online)}"
                )
        return Convergence(converged=not problems, problems=tuple(problems))

    def await_converged(
        self, timeout: float = 300.0, interval: float = 1.0, on_progress=None
    ) -> float:
        """Wait until :meth:`convergence` says the cluster is whole; returns the seconds waited.

        ``on_progress`` (if given) gets the problems of every check that failed. Raises
        :class:`DrillError` with what was still missing if it never converges.
        """
        started = time.monotonic()
        last = Convergence(converged=False, problems=("never checked",))
        while time.monotonic() - started < timeout:
            last = self.convergence()
            if last.converged:
                return time.monotonic() - started
            if on_progress is not None:
                on_progress(last.problems)
            time.sleep(interval)
        raise DrillError(
            f"the cluster did not converge within {timeout:.0f} s: {'; '.join(last.problems)}"
        )

    def rolling_restart(
        self, on_node_restarted=None, on_node_draining=None, on_node_stopping=None
    ) -> list[float]:
        """Restart every node, highest ordinal first, the way the StatefulSet controller does.

        Per node: the pod's preStop (await quorum+1, drain), a clean stop (SIGTERM), start, wait
        until it rejoined. The callbacks get the node name when its preStop starts, right
        before its SIGTERM, and once it rejoined. Returns each node's seconds from the SIGTERM
        to rejoined.
        """
        prestop = config.prestop_script(quorum_wait_seconds=120, drain_timeout_seconds=60)
        durations = []
        for node in reversed(self.nodes):
            if on_node_draining is not None:
                on_node_draining(node.name)
            result = subprocess.run(
                self.node_command(node.name, ["bash", "-c", prestop]),
                env=self.environment(node.name), capture_output=True, text=True, timeout=300,
                start_new_session=True,
            )
            if result.returncode != 0:
                raise DrillError(f"preStop on {node.name} failed: {result.stderr}")
            if on_node_stopping is not None:
                on_node_stopping(node.name)
            stopped_at = time.monotonic()
            self.stop(node.name)
            self.start(node.name)
            self.await_rejoined(node.name)
            durations.append(time.monotonic() - stopped_at)
            if on_node_restarted is not None:
                on_node_restarted(node.name)
        return durations

    # ---------------------------------------------------------------------------- clients

    def amqp_url(self, name: str) -> str:
        """The node's client URL: ``amqps://`` on its TLS port when the cluster runs TLS."""
        node = self.node(name)
        vhost = urllib.parse.quote(DRILL_VHOST, safe="")
        scheme, port = ("amqps", node.amqps_port) if self.tls else ("amqp", node.amqp_port)
        return (
            f"{scheme}://{DRILL_APP_USER}:{self.app_password}@{node.amqp_host}:{port}/{vhost}"
        )

    def amqp_endpoint(self, name: str) -> dict[str, object]:
        """``host`` and ``ssl`` keyword arguments for ``amqp.Connection`` to node ``name``:
        with TLS the client verifies the node against this cluster's CA and the host name."""
        node = self.node(name)
        if not self.tls:
            return {"host": f"{node.amqp_host}:{node.amqp_port}"}
        return {"host": f"{node.amqp_host}:{node.amqps_port}",
                "ssl": {"ca_certs": str(self.ca_file), "cert_reqs": ssl.CERT_REQUIRED,
                        "server_hostname": node.amqp_host}}

    def client_environment(self) -> dict[str, str]:
        """What the app's settings need to reach this cluster (``app.settings``)."""
        env = {"CELERY_BROKER_URL": self.broker_url()}
        if self.tls:
            env["CELERY_BROKER_CA_FILE"] = str(self.ca_file)
        return env

    def short_name(self, name: str) -> str:
        """A node's name for tables and charts (``rmq1``)."""
        return node_short_name(name)

    def client_command(self, argv: list[str]) -> list[str]:
        """``argv`` run where the cluster's clients can reach its AMQP URLs (here: anywhere)."""
        return argv

    def amqp_urls(self) -> list[str]:
        """One URL per node, application user and vhost (Celery's failover list, as a list)."""
        return [self.amqp_url(node.name) for node in self.nodes]

    def broker_url(self) -> str:
        """The `;`-separated failover list Celery takes, like the Kubernetes Secret's value."""
        return ";".join(self.amqp_urls())

    def node_for_endpoint(self, host: str, port: int) -> str:
        """The node a client reached at ``host:port`` (as a "Connected to ..." log line says)."""
        for node in self.nodes:
            if node.amqp_host == host and port in (node.amqp_port, node.amqps_port):
                return node.name
        raise KeyError(f"no node of this cluster listens for AMQP on {host}:{port}")

    def node_for_port(self, port: int) -> str:
        for node in self.nodes:
            if port in (node.amqp_port, node.management_port, node.prometheus_port,
                        node.dist_port, node.amqps_port, node.management_tls_port,
                        node.prometheus_tls_port):
                return node.name
        raise KeyError(f"no node of this cluster listens on port {port}")

    def quorum_status(self, queue: str, via: str | None = None) -> list[dict]:
        candidates = [via] if via else [n.name for n in self.nodes if self.is_running(n.name)]
        last = ""
        for name in candidates:
            result = self.cli("rabbitmq-queues", name, "quorum_status", queue, "--vhost",
                              DRILL_VHOST, "--formatter", "json", check=False)
            if result.returncode == 0:
                return json.loads(result.stdout)
            last = result.stderr.strip()
        raise DrillError(f"quorum_status {queue}: {last}")

    def quorum_leader(self, queue: str, timeout: float = 30.0) -> str:
        """The node currently leading ``queue`` (waits for an election if there is none)."""
        deadline = time.monotonic() + timeout
        while True:
            for row in self.quorum_status(queue):
                state = str(row.get("Raft State", "")).lower()
                if state == "leader":
                    return str(row["Node Name"])
            if time.monotonic() > deadline:
                raise DrillError(f"queue {queue} has no leader after {timeout:.0f} s")
            time.sleep(0.3)

    def queue_type(self, queue: str) -> str:
        live = next(n.name for n in self.nodes if self.is_running(n.name))
        result = self.cli("rabbitmqctl", live, "list_queues", "-p", DRILL_VHOST, "name", "type",
                          "--formatter", "json")
        for row in json.loads(result.stdout):
            if row["name"] == queue:
                return str(row["type"])
        raise KeyError(f"no queue {queue!r} in vhost {DRILL_VHOST}")

    def users(self) -> list[str]:
        live = next(n.name for n in self.nodes if self.is_running(n.name))
        result = self.cli("rabbitmqctl", live, "list_users", "--formatter", "json")
        return sorted(row["user"] for row in json.loads(result.stdout))


def node_short_name(name: str) -> str:
    return re.sub(r"@.*", "", name)


def _first_line(result: subprocess.CompletedProcess) -> str:
    text = (result.stderr or result.stdout or "").strip()
    return text.splitlines()[0][:200] if text else f"exit {result.returncode}"
