"""The network-namespace harness: isolated hosts, silent faults that drop (never reset), and a
clean-up that leaves nothing behind, even for a run that was killed.

Needs root (``ip netns``), like every drill; marked ``drill``. The cluster on top of it is
exercised by ``test_silent_faults.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from drills import netns
from drills.netns import NetworkLab, remove_orphaned_labs

pytestmark = [pytest.mark.drill, pytest.mark.timeout(120)]

SERVER = (
    "import socket\n"
    "s = socket.create_server(('0.0.0.0', 7000))\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'hi'); c.close()\n"
)
PROBE = (
    "import socket, sys, time\n"
    "started = time.monotonic()\n"
    "try:\n"
    "    with socket.create_connection((sys.argv[1], 7000), timeout=1.5) as c:\n"
    "        print('answered', c.recv(2).decode())\n"
    "except TimeoutError:\n"
    "    print('silent')\n"
    "except OSError as error:\n"
    "    print('refused' if isinstance(error, ConnectionRefusedError) else f'error {error}')\n"
)


def probe(lab: NetworkLab, source: str, target: str) -> str:
    result = subprocess.run(lab.command(source, [sys.executable, "-c", PROBE, target]),
                            capture_output=True, text=True, timeout=30)
    return result.stdout.strip()


@pytest.fixture
def lab() -> NetworkLab:
    with NetworkLab() as created:
        created.add_network("cl", "10.77.0.0/24")
        created.add_network("ap", "10.77.1.0/24")
        created.add_host("node", {"cl": 11, "ap": 11})
        created.add_host("peer", {"cl": 12})
        created.add_host("client", {"ap": 100})
        created.write_hosts_files({"node-ap": "node:ap"})
        server = subprocess.Popen(created.command("node", [sys.executable, "-c", SERVER]))
        try:
            time.sleep(0.5)
            yield created
        finally:
            server.kill()
            server.wait(timeout=10)


def test_hosts_reach_each_other_by_name_on_their_networks_only(lab: NetworkLab) -> None:
    assert probe(lab, "peer", "node") == "answered hi"  # "node" is its cluster address
    assert probe(lab, "client", "node-ap") == "answered hi"
    # The client is not on the cluster network: no route, an immediate error, not a hang.
    assert probe(lab, "client", "node").startswith("error")


def test_a_detached_host_is_silent_not_refused_and_heals(lab: NetworkLab) -> None:
    lab.detach("node", "ap")
    assert probe(lab, "client", "node-ap") == "silent"
    assert probe(lab, "peer", "node") == "answered hi", "the other network is untouched"
    assert lab.detached() == {("node", "ap")}
    lab.attach("node", "ap")
    assert probe(lab, "client", "node-ap") == "answered hi"


def test_an_isolated_host_still_reaches_itself_and_nobody_reaches_it(lab: NetworkLab) -> None:
    lab.isolate("node")
    assert probe(lab, "peer", "node") == "silent"
    assert probe(lab, "client", "node-ap") == "silent"
    assert probe(lab, "node", "node") == "answered hi"
    lab.reconnect("node")
    assert probe(lab, "peer", "node") == "answered hi"


def test_closing_removes_every_namespace_directory_and_process() -> None:
    lab = NetworkLab()
    lab.add_network("cl", "10.77.0.0/24")
    lab.add_host("node", {"cl": 11})
    lab.write_hosts_files()
    sleeper = subprocess.Popen(lab.command("node", ["sleep", "300"]))
    assert lab.leftovers(), "the lab exists while open"
    lab.close()
    assert sleeper.wait(timeout=10) == -9
    assert lab.leftovers() == []


def test_two_labs_never_share_a_name() -> None:
    with NetworkLab() as first, NetworkLab() as second:
        first.add_network("cl", "10.77.0.0/24")
        second.add_network("cl", "10.77.0.0/24")  # same addresses: separate namespaces
        first.add_host("node", {"cl": 11})
        second.add_host("node", {"cl": 11})
        assert first.host("node").namespace != second.host("node").namespace


def test_a_killed_runs_lab_is_removed_by_the_next_one() -> None:
    # A lab whose owner is gone (SIGKILLed drill): its record names a dead PID.
    orphan = NetworkLab()
    orphan.add_network("cl", "10.77.0.0/24")
    orphan.add_host("node", {"cl": 11})
    record = netns.REGISTRY / f"{orphan.run_id}.json"
    dead = subprocess.Popen(["true"])
    dead.wait()
    record.write_text(json.dumps({"owner": dead.pid, "namespaces": orphan._created}))
    assert orphan.leftovers()
    removed = remove_orphaned_labs()
    assert set(removed) >= {orphan.host("node").namespace}
    assert orphan.leftovers() == []
    assert not record.exists()
    # A live owner's lab (this test's) is never touched.
    with NetworkLab() as alive:
        assert alive.namespace_name("switch") not in remove_orphaned_labs()
        assert alive.leftovers()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lab: lab.add_network("cluster", "10.1.0.0/24"), "use 1-4 lowercase letters"),
        (lambda lab: lab.add_host("Node", {}), "use a lowercase letter then"),
        (lambda lab: lab.add_host("node", {"zz": 1}), "network 'zz' does not exist"),
        (lambda lab: lab.detach("ghost", "cl"), "no host 'ghost'"),
    ],
)
def test_bad_lab_requests_name_the_problem(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with NetworkLab() as lab, pytest.raises((ValueError, KeyError), match=message):
        call(lab)


def test_the_lab_refuses_to_run_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(netns.NetworkLabError, match="need root"):
        NetworkLab()
