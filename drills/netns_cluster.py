"""A RabbitMQ cluster whose nodes each live in their own network namespace, with silent faults.

Owns :class:`NamespacedRabbitMQCluster`: the local cluster of ``drills.rabbitmq_cluster`` (same
files from ``infra/rabbitmq_config/``, same start order, checks and clean-up) with every node
on its own lab host (``drills.netns``) the way pods are on their own IPs: standard ports (AMQP
5672, distribution 25672, epmd 4369), node names ``rabbit@rmq1..N`` resolved through the lab's
hosts files, and two networks:

- ``cl`` (10.77.0.0/24): node to node (Erlang distribution, Raft);
- ``ap`` (10.77.1.0/24): clients to nodes (AMQP), with the ``clients`` host (10.77.1.100) where
  workers, the scheduler and other clients run (:meth:`client_command`).

Two networks let a drill cut the clients off a node while the cluster stays whole. The faults:

- :meth:`freeze` / :meth:`resume` (inherited): SIGSTOP/SIGCONT of the node's processes and its
  epmd, the whole "machine" stalls;
- :meth:`partition` / :meth:`heal`: the node is cut off both networks (frames dropped, no reset);
- :meth:`cut_clients` / :meth:`restore_clients`: only the clients lose the node;
- :meth:`kill` / :meth:`start` (inherited): a crash and a restart.

Every address is inside the lab's own namespaces, so parallel runs and the machine's own broker
never meet. :meth:`stop_all` ends the nodes and then removes the lab (namespaces, veths,
/etc/netns directories), whatever happened.

Does not own: the Celery processes a drill runs in the clients host, or the measurement.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from drills.netns import NetworkLab
from drills.rabbitmq_cluster import EPMD, LocalNode, LocalRabbitMQCluster
from infra import rabbitmq_config as config

CLUSTER_NETWORK = "cl"
CLIENT_NETWORK = "ap"
CLIENTS = "clients"
CLUSTER_SUBNET = "10.77.0.0/24"
CLIENT_SUBNET = "10.77.1.0/24"
CLIENTS_HOST_NUMBER = 100
AMQP_PORT = 5672
DIST_PORT = 25672
EPMD_PORT = 4369
MANAGEMENT_PORT = 15672
PROMETHEUS_PORT = 15692


class NamespacedRabbitMQCluster(LocalRabbitMQCluster):
    """``size`` nodes, each in its own namespace, plus a clients namespace. Use with ``with``."""

    def __init__(self, size: int = 3, *, lab: NetworkLab | None = None, **kwargs) -> None:
        self._own_lab = lab is None
        self.lab = lab or NetworkLab()
        self._epmd_by_node: dict[str, subprocess.Popen] = {}
        try:
            super().__init__(size, **kwargs)
        except BaseException:
            if self._own_lab:
                self.lab.close()
            raise

    # ----------------------------------------------------------------------- network hooks

    def _plan_nodes(self) -> list[LocalNode]:
        lab = self.lab
        if CLUSTER_NETWORK not in lab.networks:
            lab.add_network(CLUSTER_NETWORK, CLUSTER_SUBNET)
            lab.add_network(CLIENT_NETWORK, CLIENT_SUBNET)
        nodes = []
        for index in range(1, self.size + 1):
            host = lab.add_host(f"rmq{index}", {CLUSTER_NETWORK: 10 + index,
                                                CLIENT_NETWORK: 10 + index})
            nodes.append(
                LocalNode(
                    name=f"rabbit@{host.name}",
                    amqp_port=AMQP_PORT,
                    dist_port=DIST_PORT,
                    management_port=MANAGEMENT_PORT,
                    prometheus_port=PROMETHEUS_PORT,
                    directory=self.base_dir / host.name,
                    amqp_host=host.address(CLIENT_NETWORK),
                    host=host.name,
                )
            )
        if CLIENTS not in lab.hosts:
            lab.add_host(CLIENTS, {CLIENT_NETWORK: CLIENTS_HOST_NUMBER})
        # Node names resolve to the cluster network (the first one each node joined).
        lab.write_hosts_files()
        return nodes

    def node_command(self, name: str, argv: list[str]) -> list[str]:
        return self.lab.command(self._host_of(name), argv)

    def _network_environment(self, node: LocalNode) -> dict[str, str]:
        cluster_address = self.lab.host(node.host or "").address(CLUSTER_NETWORK)
        return {
            "ERL_EPMD_PORT": str(EPMD_PORT),
            # Distribution only on the cluster network, as inside the pod network.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {" + cluster_address.replace(".", ",") + "}"
            ),
        }

    def _plain_amqp_on_loopback(self) -> bool:
        # Each node has its own namespace, like a pod: its loopback is its own.
        return True

    def _listeners(self, node: LocalNode) -> config.Listeners:
        # Every interface of the node's own namespace, like a pod.
        return config.Listeners(
            amqp_port=node.amqp_port,
            management_port=node.management_port,
            prometheus_port=node.prometheus_port,
            bind_address=None,
        )

    def _start_epmd(self) -> None:
        # One epmd per node, in the node's namespace: other nodes look each other up at the
        # node's own address, as between pods.
        for node in self.nodes:
            process = subprocess.Popen(
                self.node_command(node.name, [EPMD, "-port", str(EPMD_PORT)]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._epmds.append(process)
            self._epmd_by_node[node.name] = process

    def _host_of(self, name: str) -> str:
        host = self.node(name).host
        assert host is not None, "every node of a namespaced cluster has a lab host"
        return host

    # ---------------------------------------------------------------------------- lifecycle

    def stop_all(self) -> None:
        """End every node and epmd, then remove the lab (if this cluster created it)."""
        try:
            super().stop_all()
        finally:
            self._epmd_by_node.clear()
            if self._own_lab:
                self.lab.close()

    def leftover_processes(self) -> list[int]:
        found = set(super().leftover_processes())
        found.update(epmd.pid for epmd in self._epmds if epmd.poll() is None)
        if not self.lab.leftovers():
            return sorted(found)
        return sorted(found | set(self.lab.pids()))

    def leftover_namespaces(self) -> list[str]:
        return self.lab.leftovers()

    def short_name(self, name: str) -> str:
        """The node's lab host (``rabbit@rmq1`` -> ``rmq1``)."""
        return self._host_of(name)

    # ---------------------------------------------------------------------------- clients

    def client_command(self, argv: list[str]) -> list[str]:
        """``argv`` run in the clients namespace (where the cluster's AMQP URLs resolve)."""
        return self.lab.command(CLIENTS, argv)

    # ------------------------------------------------------------------------------ faults

    def freeze(self, name: str) -> float:
        """SIGSTOP the node and its epmd: the whole machine stalls, TCP is still acknowledged."""
        at = super().freeze(name)
        epmd = self._epmd_by_node.get(name)
        if epmd is not None and epmd.poll() is None:
            os.killpg(epmd.pid, signal.SIGSTOP)
        return at

    def resume(self, name: str) -> float:
        epmd = self._epmd_by_node.get(name)
        if epmd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(epmd.pid, signal.SIGCONT)
        return super().resume(name)

    def partition(self, name: str) -> float:
        """Cut the node off every network (its peers and the clients); returns the time."""
        self.lab.isolate(self._host_of(name))
        return time.time()

    def heal(self, name: str) -> float:
        self.lab.reconnect(self._host_of(name))
        return time.time()

    def cut_clients(self, name: str) -> float:
        """Drop the traffic between the clients and the node; the cluster stays whole."""
        self.lab.detach(self._host_of(name), CLIENT_NETWORK)
        return time.time()

    def restore_clients(self, name: str) -> float:
        self.lab.attach(self._host_of(name), CLIENT_NETWORK)
        return time.time()
