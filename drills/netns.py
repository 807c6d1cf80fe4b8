"""Network namespaces for drills: isolated hosts on private switches, and silent faults.

Owns :class:`NetworkLab`: a set of Linux network namespaces one drill run creates and removes. A
*network* is a bridge inside the lab's own switch namespace; a *host* is a namespace with one
veth per network it joins (its own address there, ``/etc/netns/<ns>/hosts`` naming every lab host
so programs resolve each other by name). Processes run in a host through :meth:`command`
(``ip netns exec``), which is also what makes the hosts file visible to them.

Faults are *silent*, the way a dead VM or a lost zone looks to a client: :meth:`detach` takes a
host's port off a bridge, so every frame to or from it on that network is dropped with no reset
and no ICMP (the host's own interface stays up; its kernel still answers itself). :meth:`attach`
heals. :meth:`isolate` / :meth:`reconnect` do it for every network of a host.

Guarantees: names are unique per run (``hcl-<6 hex>-<host>``), so parallel runs never collide; the
veths are created directly inside their namespaces (nothing is ever added to the machine's own
network namespace, routes or addresses); :meth:`close` kills what still runs inside the lab's
namespaces (only the drill put processes there), deletes the namespaces and their /etc/netns
directories, and is called by ``__exit__`` whatever happened. A run that was SIGKILLed cannot
clean up: :func:`remove_orphaned_labs` removes labs whose owning process is gone (the registry
in ``/run/hacelery-netlab`` records the owner), and every new lab calls it first.

Does not own: what runs in the hosts (``drills.netns_cluster`` puts RabbitMQ nodes there), or
process groups of the programs it runs (their owners stop them; :meth:`close` is the backstop).
Needs root (``ip netns``); :func:`require_netns` says so with the fix.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
NETNS_ETC = Path("/etc/netns")
REGISTRY = Path(os.environ.get("HACELERY_NETLAB_REGISTRY", "/run/hacelery-netlab"))
PREFIX = "hcl"
"""Every namespace a lab creates is named ``hcl-<run id>-<host>``."""
SWITCH = "switch"

_HOST_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_NETWORK_NAME = re.compile(r"^[a-z][a-z0-9]{0,3}$")


class NetworkLabError(RuntimeError):
    """A namespace operation failed; the message has the command and its output."""


def _ip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [IP, *arguments], capture_output=True, text=True, timeout=30, check=False
    )
    if check and result.returncode != 0:
        raise NetworkLabError(
            f"ip {' '.join(arguments)} exited {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def require_netns() -> None:
    """Raise with the fix if this process cannot create network namespaces."""
    if os.geteuid() != 0:
        raise NetworkLabError(
            "network namespaces need root: run the drill as root (sudo -E .venv/bin/python ...)"
        )
    if not Path(IP).exists():
        raise NetworkLabError("the `ip` command is missing: apt-get install -y iproute2")


@dataclass(frozen=True)
class Network:
    name: str
    """Short name (<= 4 characters): ``cl`` (cluster), ``ap`` (clients), ..."""
    subnet: ipaddress.IPv4Network


@dataclass(frozen=True)
class Host:
    name: str
    """Host name inside the lab (what the hosts file maps)."""
    namespace: str
    addresses: dict[str, str] = field(default_factory=dict)
    """Network name -> this host's IPv4 address on it."""

    def address(self, network: str) -> str:
        try:
            return self.addresses[network]
        except KeyError:
            raise KeyError(
                f"host {self.name!r} is not on network {network!r} "
                f"(it is on {sorted(self.addresses)})"
            ) from None


def _interface(network: str) -> str:
    """The host-side interface name for a network (the same in every host)."""
    return f"{network}0"


def _port(host: str, network: str) -> str:
    """The switch-side interface name (<= 15 characters, unique inside the switch)."""
    return f"{host}-{network}"


class NetworkLab:
    """Namespaces for one drill run: ``with NetworkLab() as lab: lab.add_network(...)``."""

    def __init__(self, *, run_id: str | None = None) -> None:
        require_netns()
        self.run_id = run_id or secrets.token_hex(3)
        self.networks: dict[str, Network] = {}
        self.hosts: dict[str, Host] = {}
        self._detached: set[tuple[str, str]] = set()
        self._created: list[str] = []
        self._closed = False
        remove_orphaned_labs()
        self._register()
        try:
            self._add_namespace(self.namespace_name(SWITCH))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------ building

    def namespace_name(self, host: str) -> str:
        return f"{PREFIX}-{self.run_id}-{host}"

    def add_network(self, name: str, subnet: str) -> Network:
        """A bridge in the switch namespace for hosts to join, e.g. ``("cl", "10.77.0.0/24")``."""
        if not _NETWORK_NAME.match(name):
            raise ValueError(f"network name {name!r}: use 1-4 lowercase letters or digits")
        if name in self.networks:
            raise ValueError(f"network {name!r} exists already")
        network = Network(name=name, subnet=ipaddress.IPv4Network(subnet))
        switch = self.namespace_name(SWITCH)
        _ip("-n", switch, "link", "add", f"br-{name}", "type", "bridge")
        _ip("-n", switch, "link", "set", f"br-{name}", "up")
        self.networks[name] = network
        return network

    def add_host(self, name: str, addresses: dict[str, int]) -> Host:
        """A namespace joined to each network at ``subnet[host number]``: ``{"cl": 11}``."""
        if not _HOST_NAME.match(name) or name == SWITCH:
            raise ValueError(
                f"host name {name!r}: use a lowercase letter then up to 9 letters or digits "
                f"(not {SWITCH!r})"
            )
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists already")
        namespace = self.namespace_name(name)
        self._add_namespace(namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        switch = self.namespace_name(SWITCH)
        assigned: dict[str, str] = {}
        for network_name, number in addresses.items():
            network = self.networks.get(network_name)
            if network is None:
                raise ValueError(f"network {network_name!r} does not exist; add it first")
            address = str(network.subnet[number])
            interface, port = _interface(network_name), _port(name, network_name)
            # Both ends are created inside their namespaces: nothing touches the machine's own.
            _ip("link", "add", "name", interface, "netns", namespace, "type", "veth",
                "peer", "name", port, "netns", switch)
            _ip("-n", namespace, "addr", "add", f"{address}/{network.subnet.prefixlen}",
                "dev", interface)
            _ip("-n", namespace, "link", "set", interface, "up")
            _ip("-n", switch, "link", "set", port, "master", f"br-{network_name}", "up")
            assigned[network_name] = address
        host = Host(name=name, namespace=namespace, addresses=assigned)
        self.hosts[name] = host
        return host

    def write_hosts_files(self, names: dict[str, str] | None = None) -> None:
        """Give every host an /etc/hosts naming the lab's hosts.

        ``names`` maps extra host names to a ``"host:network"`` address (default: each host's
        name resolves to its address on the first network it joined). ``localhost`` and this
        machine's own host name resolve to 127.0.0.1 inside every host, as on the machine.
        """
        lines = ["127.0.0.1 localhost", f"127.0.0.1 {socket.gethostname()}"]
        for host in self.hosts.values():
            if host.addresses:
                lines.append(f"{next(iter(host.addresses.values()))} {host.name}")
        for alias, where in (names or {}).items():
            host_name, _, network = where.partition(":")
            lines.append(f"{self.hosts[host_name].address(network)} {alias}")
        text = "\n".join(lines) + "\n"
        for host in self.hosts.values():
            directory = NETNS_ETC / host.namespace
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "hosts").write_text(text)

    # ------------------------------------------------------------------------------- running

    def command(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` to run inside ``host`` (its network, its hosts file)."""
        return [IP, "netns", "exec", self.host(host).namespace, *argv]

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no host {name!r} in this lab ({sorted(self.hosts)})") from None

    def pids(self, host: str | None = None) -> list[int]:
        """PIDs running inside one host's namespace, or inside any of the lab's."""
        namespaces = (
            [self.host(host).namespace] if host else [*self._created]
        )
        found: list[int] = []
        for namespace in namespaces:
            result = _ip("netns", "pids", namespace, check=False)
            found += [int(pid) for pid in result.stdout.split()]
        return found

    # -------------------------------------------------------------------------------- faults

    def detach(self, host: str, network: str) -> None:
        """Silently cut ``host`` off ``network``: its port leaves the bridge (no reset, no ICMP)."""
        self.host(host).address(network)
        _ip("-n", self.namespace_name(SWITCH), "link", "set", _port(host, network), "nomaster")
        self._detached.add((host, network))

    def attach(self, host: str, network: str) -> None:
        """Heal :meth:`detach`: the port joins the bridge again."""
        self.host(host).address(network)
        _ip("-n", self.namespace_name(SWITCH), "link", "set", _port(host, network),
            "master", f"br-{network}")
        self._detached.discard((host, network))

    def isolate(self, host: str) -> None:
        """Cut ``host`` off every network it is on (a partitioned machine)."""
        for network in self.host(host).addresses:
            self.detach(host, network)

    def reconnect(self, host: str) -> None:
        for network in self.host(host).addresses:
            self.attach(host, network)

    def detached(self) -> set[tuple[str, str]]:
        """``(host, network)`` pairs cut off right now."""
        return set(self._detached)

    # ------------------------------------------------------------------------------ clean-up

    def __enter__(self) -> NetworkLab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what still runs in the lab, delete its namespaces and /etc/netns directories."""
        if self._closed:
            return
        _remove_namespaces(self._created)
        self._created.clear()
        with contextlib.suppress(FileNotFoundError):
            (REGISTRY / f"{self.run_id}.json").unlink()
        self._closed = True

    def leftovers(self) -> list[str]:
        """Namespaces or /etc/netns directories of this lab that still exist (should be none)."""
        existing = set(_namespaces())
        prefix = f"{PREFIX}-{self.run_id}-"
        found = sorted(name for name in existing if name.startswith(prefix))
        if NETNS_ETC.exists():
            found += sorted(
                str(path) for path in NETNS_ETC.iterdir() if path.name.startswith(prefix)
            )
        return found

    # ------------------------------------------------------------------------------ internals

    def _add_namespace(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self._created.append(namespace)
        self._register()

    def _register(self) -> None:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / f"{self.run_id}.json").write_text(
            json.dumps({"owner": os.getpid(), "namespaces": self._created})
        )


def _namespaces() -> list[str]:
    result = _ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _remove_namespaces(namespaces: list[str]) -> None:
    for namespace in namespaces:
        # Only the drill puts processes into its namespaces: whatever is left there is its own.
        pids = [int(pid) for pid in _ip("netns", "pids", namespace, check=False).stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
            time.sleep(0.05)
        _ip("netns", "delete", namespace, check=False)
        shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
    with contextlib.suppress(OSError):
        NETNS_ETC.rmdir()  # only if empty: other labs (or the machine) may use it


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def remove_orphaned_labs() -> list[str]:
    """Remove the namespaces of labs whose owning process is gone (a SIGKILLed run).

    Labs of live processes (parallel runs) are left alone. Returns the namespaces removed.
    """
    removed: list[str] = []
    if not REGISTRY.exists():
        return removed
    for entry in REGISTRY.glob("*.json"):
        try:
            record = json.loads(entry.read_text())
            owner, namespaces = int(record["owner"]), list(record["namespaces"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(owner):
            continue
        mine = [name for name in namespaces if name.startswith(f"{PREFIX}-")]
        _remove_namespaces(mine)
        removed += mine
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    return removed
