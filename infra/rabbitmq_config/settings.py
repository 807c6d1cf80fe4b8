"""The typed settings rabbitmq.conf is rendered from: peer discovery (Kubernetes or a fixed node
list), listeners, and ``BrokerSettings`` with every limit validated (the message names the field,
the bad value and what is allowed).

Does not render anything (``conf`` does) and holds no TLS file paths (``tls.BrokerTls``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from infra.rabbitmq_config.tls import BrokerTls
from infra.rabbitmq_config.versions import RabbitMQVersion, check_supported

PARTITION_HANDLING_MODES = ("autoheal", "pause_minority")
"""The Mnesia partition handling modes the platform supports (``ignore`` never heals)."""

_NODE_NAME = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, kw_only=True)
class KubernetesPeerDiscovery:
    """Peer discovery through the StatefulSet's headless Service (production)."""

    headless_service: str
    namespace: str


@dataclass(frozen=True, kw_only=True)
class ClassicConfigPeerDiscovery:
    """A fixed node list (the one-machine drill, where there is no Kubernetes)."""

    nodes: tuple[str, ...]

    def __post_init__(self) -> None:
        bad = [node for node in self.nodes if not _NODE_NAME.match(node)]
        if not self.nodes or bad:
            raise ValueError(
                f"ClassicConfigPeerDiscovery.nodes: {bad or self.nodes!r} — list node names "
                "like 'rmq1@localhost'"
            )


@dataclass(frozen=True, kw_only=True)
class Listeners:
    """Ports (and, on one machine, the interface) the node listens on."""

    amqp_port: int = 5672
    management_port: int = 15672
    prometheus_port: int = 15692
    bind_address: str | None = None
    """None: all interfaces (a pod's own network namespace). The drill binds 127.0.0.1."""

    def __post_init__(self) -> None:
        for name in ("amqp_port", "management_port", "prometheus_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ValueError(f"Listeners.{name}: {port} is not a TCP port (1-65535)")


@dataclass(frozen=True, kw_only=True)
class BrokerSettings:
    """Everything rabbitmq.conf depends on; built by the component or the drill."""

    version: RabbitMQVersion
    cluster_name: str
    peer_discovery: KubernetesPeerDiscovery | ClassicConfigPeerDiscovery
    target_cluster_size: int
    memory_high_watermark_bytes: int
    disk_free_limit_bytes: int
    definitions_path: str
    listeners: Listeners = field(default_factory=Listeners)
    partition_handling: str = "autoheal"
    """Mnesia versions (< 4.3) only: ``autoheal`` (default) or ``pause_minority``. See
    ``rabbitmq_conf`` for the measured reason."""
    net_ticktime_seconds: int = 10
    """How soon a node that stopped answering (frozen, partitioned) is declared down by its
    peers: after about 1-1.25x this. See ``rabbitmq_conf`` for the measured reason."""
    tls: BrokerTls | None = None
    """None: plain AMQP, HTTP and distribution (a drill's baseline only). Set: AMQPS, HTTPS and
    inter-node TLS, plain listeners on loopback at most (see ``tls``)."""
    permit_transient_nonexclusive_queues: bool = True
    """4.3+ only. Celery's remote-control (pidbox) and event queues are transient and
    non-exclusive; 4.3 rejects those unless permitted, which would break `celery inspect` and
    Flower."""

    def __post_init__(self) -> None:
        check_supported(self.version)
        if self.target_cluster_size < 1:
            raise ValueError(
                f"BrokerSettings.target_cluster_size: {self.target_cluster_size} — use 1 or more"
            )
        if self.memory_high_watermark_bytes < 64 * 2**20:
            raise ValueError(
                f"BrokerSettings.memory_high_watermark_bytes: {self.memory_high_watermark_bytes}"
                " — below 64 MiB a node spends its time blocking publishers; give it more"
            )
        if self.partition_handling not in PARTITION_HANDLING_MODES:
            raise ValueError(
                f"BrokerSettings.partition_handling: {self.partition_handling!r} — use one of "
                f"{', '.join(PARTITION_HANDLING_MODES)}"
            )
        if (
            not isinstance(self.net_ticktime_seconds, int)
            or isinstance(self.net_ticktime_seconds, bool)
            or not 5 <= self.net_ticktime_seconds <= 600
        ):
            raise ValueError(
                f"BrokerSettings.net_ticktime_seconds: {self.net_ticktime_seconds!r} — use a whole "
                "number of seconds 5..600 (RabbitMQ's default is 60; the platform uses 10)"
            )
        if self.disk_free_limit_bytes < 50 * 10**6:
            raise ValueError(
                f"BrokerSettings.disk_free_limit_bytes: {self.disk_free_limit_bytes} — use at "
                "least 50 MB (RabbitMQ's own floor)"
            )
        if not self.definitions_path.startswith("/"):
            raise ValueError(
                f"BrokerSettings.definitions_path: {self.definitions_path!r} — use an absolute path"
            )
