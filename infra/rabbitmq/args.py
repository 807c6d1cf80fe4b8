"""RabbitMQ's inputs, constants and object names: `RabbitMQClusterArgs` (every default with its
reason, validated), `ObjectNames` (every Kubernetes object name derived from the component name)
and the label/metadata helpers every builder of the package uses.

Does not build any Kubernetes object (the sibling modules do) and does not read stack config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi_kubernetes as k8s

from infra import names as labels_module
from infra import rabbitmq_config as config
from infra.network_policy import MetricsScraper
from infra.quantities import QUANTITY, quantity_bytes
from infra.tls import CA_KEY, CERTIFICATE_KEY, PRIVATE_KEY_KEY, CertificateAuthority
from infra.validation import check

DEFAULT_IMAGE = "rabbitmq:4.3.4-management"
"""Official image, pinned. 4.3: Raft metadata store only (no partition handling keys)."""

APP_NAME = "rabbitmq"
RABBITMQ_UID = 999  # the official image's rabbitmq user

# The port map, in one place (Services, NetworkPolicies, probes, URLs and scrapers read it).
AMQP_PORT = 5672
"""Plain AMQP: with TLS on, bound to the pod's loopback only (nothing outside the pod)."""
MANAGEMENT_PORT = 15672
"""Plain HTTP management: with TLS on, loopback only (`kubectl port-forward` still works)."""
PROMETHEUS_PORT = 15692
"""Plain HTTP metrics: with TLS on, loopback only."""
AMQPS_PORT = config.AMQPS_PORT
MANAGEMENT_TLS_PORT = config.MANAGEMENT_TLS_PORT
PROMETHEUS_TLS_PORT = config.PROMETHEUS_TLS_PORT
TLS_DIR = "/etc/rabbitmq/tls"
"""The node's certificate, key and the CA (the ``kubernetes.io/tls`` Secret)."""
EPMD_PORT = 4369
DISTRIBUTION_PORT = 25672
CLI_PORT_RANGE = (35672, 35682)
"""CLI tools (preStop, probes, `rabbitmqctl` from a peer pod) use this range for distribution."""

BROKER_URL_KEY = "broker_url"
"""Key in the `broker_secret_name` Secret holding Celery's `;`-separated failover list."""
QUEUE_MONITOR_URL_KEY = "host"
"""Key in the `queue_monitor_secret_name` Secret: management-API URL with the monitor user."""
QUEUE_MONITOR_TLS_KEY = "tls"
"""With TLS: ``enable`` (KEDA's RabbitMQ TriggerAuthentication parameter ``tls``)."""
QUEUE_MONITOR_CA_KEY = "ca"
"""With TLS: the stack's CA certificate (KEDA's parameter ``ca``): KEDA verifies the server."""
ADMIN_USERNAME_KEY = "username"
ADMIN_PASSWORD_KEY = "password"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, kw_only=True)
class RabbitMQClusterArgs:
    """Inputs for RabbitMQCluster. Only ``namespace`` is required; every default is here."""

    namespace: str
    replicas: int = 3
    """Odd (3, 5, 7): quorum queues need a majority; an even count adds cost, not tolerance."""
    image: str = DEFAULT_IMAGE
    rabbitmq_version: str | None = None
    """None: read from the image tag. Gates version-specific config keys."""
    storage_class: str | None = None
    """None: the cluster's default StorageClass."""
    storage_size: str = "20Gi"
    cpu_request: str = "1"
    cpu_limit: str | None = None
    """None (default): no CPU limit; throttling delays Raft heartbeats and triggers elections."""
    memory: str = "2Gi"
    """Request = limit, so the node is never the first evicted under memory pressure."""
    memory_high_watermark_ratio: float = 0.6
    """Fraction of ``memory`` at which publishers are blocked (written as an absolute value)."""
    disk_free_limit: str = "2Gi"
    """Free space on the volume below which publishers are blocked."""
    zones: tuple[str, ...] = ()
    """Zones to spread over (one pod per zone when replicas == len(zones)); empty: no zone rule."""
    vhost: str = "celery"
    app_username: str = "celery"
    admin_username: str = "admin"
    monitor_username: str = "queue-monitor"
    """Read-only `monitoring` user for queue-depth autoscaling (management API)."""
    management_client_namespaces: tuple[str, ...] = ()
    """Other namespaces whose pods may reach management and metrics (``client_ports``), e.g.
    KEDA's (queue-depth autoscaling) or Prometheus'. The platform's own namespace always may."""
    kubernetes_api_cidrs: tuple[str, ...] = ()
    """Where the Kubernetes API server is (peer discovery asks it for the other pods): the GKE
    control plane's range, wired by the platform; empty: any address on 443/6443 (local)."""
    queue_monitor_secret_namespace: str | None = None
    """Where the queue-monitor Secret (the read-only management-API URL) is created; None: the
    cluster's own namespace. KEDA reads Secrets only from its own namespace, so the platform
    puts it there, and nothing in the platform's namespace is readable by KEDA."""
    metrics_scraper: MetricsScraper | None = None
    """Who scrapes the nodes' Prometheus port (wired by the platform): admitted to the client
    metrics port only (``client_ports.prometheus``: 15691 with TLS, 15692 without).
    None: only the platform's pods and ``management_client_namespaces`` reach it."""
    delivery_limit: int = 20
    """Redeliveries before a message is dead-lettered (a task that crashes its worker)."""
    dead_letter_queue: str = "dead-letter"
    file_descriptor_limit: int = 65536
    prestop_quorum_wait_seconds: int = 300
    """preStop waits this long for every quorum queue to keep a majority without this node."""
    drain_timeout_seconds: int = 120
    permit_transient_nonexclusive_queues: bool = True
    """4.3+: keep Celery's remote-control and event queues working (see rabbitmq_config)."""
    certificate_authority: CertificateAuthority | None = None
    """The stack's CA (wired by the platform): one certificate naming every pod; clients use
    AMQPS and management HTTPS, nodes talk mutual TLS; plain listeners on loopback only. None:
    plaintext (builder tests and the drills' baseline)."""
    protect: bool = True
    """True: Pulumi refuses to delete or replace the StatefulSet and its claims (`pulumi up` and
    `pulumi destroy` stop with an error) until this is False again. Secure default; the stack's
    `ha-celery:protect` sets it."""

    def __post_init__(self) -> None:
        cls = "RabbitMQClusterArgs"
        check(
            bool(_DNS_LABEL.match(self.namespace)) and len(self.namespace) <= 63,
            f"{cls}.namespace",
            self.namespace,
            "a DNS label (lowercase letters, digits, '-')",
        )
        check(
            isinstance(self.replicas, int) and self.replicas >= 1 and self.replicas % 2 == 1,
            f"{cls}.replicas",
            self.replicas,
            "an odd number: 1, 3, 5 or 7",
        )
        check(
            self.replicas <= 7,
            f"{cls}.replicas",
            self.replicas,
            "at most 7 (every quorum write waits for a majority)",
        )
        try:
            version = self.version
        except ValueError as error:
            check(False, f"{cls}.image", self.image, f"an image with a version tag ({error})")
        try:
            config.check_supported(version)
        except ValueError as error:
            check(False, f"{cls}.rabbitmq_version", str(version), str(error))
        for name in ("storage_size", "memory", "disk_free_limit"):
            value = getattr(self, name)
            check(
                bool(QUANTITY.match(value)),
                f"{cls}.{name}",
                value,
                "a Kubernetes quantity such as '2Gi'",
            )
        check(
            quantity_bytes(self.memory) >= 256 * 2**20,
            f"{cls}.memory",
            self.memory,
            "at least 256Mi",
        )
        check(
            quantity_bytes(self.disk_free_limit) < quantity_bytes(self.storage_size),
            f"{cls}.disk_free_limit",
            self.disk_free_limit,
            f"less than storage_size ({self.storage_size})",
        )
        check(
            0.2 <= self.memory_high_watermark_ratio <= 0.8,
            f"{cls}.memory_high_watermark_ratio",
            self.memory_high_watermark_ratio,
            "between 0.2 and 0.8 (room for the runtime below the container limit)",
        )
        check(
            bool(_CPU.match(self.cpu_request)),
            f"{cls}.cpu_request",
            self.cpu_request,
            "a CPU quantity such as '500m' or '2'",
        )
        check(
            self.cpu_limit is None or bool(_CPU.match(self.cpu_limit)),
            f"{cls}.cpu_limit",
            self.cpu_limit,
            "None (no limit) or a CPU quantity such as '2'",
        )
        check(
            len(set(self.zones)) == len(self.zones) and all(self.zones),
            f"{cls}.zones",
            self.zones,
            "distinct, non-empty zone names (or empty)",
        )
        check(
            self.storage_class is None or bool(_DNS_LABEL.match(self.storage_class)),
            f"{cls}.storage_class",
            self.storage_class,
            "None or a StorageClass name",
        )
        for name in ("app_username", "admin_username", "monitor_username"):
            value = getattr(self, name)
            check(
                bool(_USERNAME.match(value)) and value != "guest",
                f"{cls}.{name}",
                value,
                "1-64 letters, digits, '_', '.', '-', and not 'guest'",
            )
        check(
            self.app_username != self.admin_username,
            f"{cls}.app_username",
            self.app_username,
            "a name different from admin_username",
        )
        check(
            self.monitor_username not in (self.app_username, self.admin_username),
            f"{cls}.monitor_username",
            self.monitor_username,
            "a name different from app_username and admin_username",
        )
        check(
            self.queue_monitor_secret_namespace is None
            or bool(_DNS_LABEL.match(self.queue_monitor_secret_namespace)),
            f"{cls}.queue_monitor_secret_namespace",
            self.queue_monitor_secret_namespace,
            "None or a namespace name (DNS label)",
        )
        check(
            all(_DNS_LABEL.match(namespace) for namespace in self.management_client_namespaces),
            f"{cls}.management_client_namespaces",
            self.management_client_namespaces,
            "namespace names (DNS labels)",
        )
        check(
            bool(self.vhost) and "\n" not in self.vhost,
            f"{cls}.vhost",
            self.vhost,
            "a non-empty vhost name",
        )
        try:
            self.poison_policy  # noqa: B018 (validates)
        except ValueError as error:
            check(False, f"{cls}.delivery_limit", self.delivery_limit, str(error))
        check(
            1024 <= self.file_descriptor_limit <= 1_048_576,
            f"{cls}.file_descriptor_limit",
            self.file_descriptor_limit,
            "1024..1048576",
        )
        check(
            0 <= self.prestop_quorum_wait_seconds <= 3600,
            f"{cls}.prestop_quorum_wait_seconds",
            self.prestop_quorum_wait_seconds,
            "0..3600 seconds (bounded, so a pod can never hang in Terminating)",
        )
        check(
            1 <= self.drain_timeout_seconds <= 900,
            f"{cls}.drain_timeout_seconds",
            self.drain_timeout_seconds,
            "1..900 seconds",
        )

    @property
    def version(self) -> config.RabbitMQVersion:
        if self.rabbitmq_version is not None:
            return config.RabbitMQVersion.parse(self.rabbitmq_version)
        return config.RabbitMQVersion.from_image(self.image)

    @property
    def server_tls(self) -> config.BrokerTls | None:
        if self.certificate_authority is None:
            return None
        return config.BrokerTls(
            certificate_file=f"{TLS_DIR}/{CERTIFICATE_KEY}",
            key_file=f"{TLS_DIR}/{PRIVATE_KEY_KEY}",
            ca_file=f"{TLS_DIR}/{CA_KEY}",
        )

    @property
    def client_ports(self) -> ClientPorts:
        """The ports clients on the pod network use (TLS ones when TLS is on)."""
        if self.server_tls is None:
            return ClientPorts(amqp=AMQP_PORT, management=MANAGEMENT_PORT,
                               prometheus=PROMETHEUS_PORT, tls=False)
        return ClientPorts(amqp=AMQPS_PORT, management=MANAGEMENT_TLS_PORT,
                           prometheus=PROMETHEUS_TLS_PORT, tls=True)

    @property
    def poison_policy(self) -> config.PoisonMessagePolicy:
        return config.PoisonMessagePolicy(
            delivery_limit=self.delivery_limit,
            dead_letter_queue=self.dead_letter_queue,
            dead_letter_exchange=self.dead_letter_queue,
        )

    @property
    def termination_grace_seconds(self) -> int:
        # preStop's two bounded waits plus time for a clean stop after SIGTERM.
        return self.prestop_quorum_wait_seconds + self.drain_timeout_seconds + 60


@dataclass(frozen=True)
class ClientPorts:
    """What the pod network sees of a node: AMQP(S), management and metrics ports."""

    amqp: int
    management: int
    prometheus: int
    tls: bool

    @property
    def amqp_scheme(self) -> str:
        return "amqps" if self.tls else "amqp"

    @property
    def http_scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class ObjectNames:
    """Kubernetes object names, all derived from the component name (stable across updates)."""

    base: str
    statefulset: str = field(init=False)
    headless_service: str = field(init=False)
    client_service: str = field(init=False)
    config_map: str = field(init=False)
    server_secret: str = field(init=False)
    cookie_secret: str = field(init=False)
    admin_secret: str = field(init=False)
    broker_secret: str = field(init=False)
    queue_monitor_secret: str = field(init=False)
    tls_secret: str = field(init=False)
    service_account: str = field(init=False)

    def __post_init__(self) -> None:
        check(
            bool(_DNS_LABEL.match(self.base)) and len(self.base) <= 40,
            "RabbitMQCluster name",
            self.base,
            "a DNS label of at most 40 characters",
        )
        for attribute, suffix in (
            ("statefulset", ""),
            ("headless_service", "-nodes"),
            ("client_service", ""),
            ("config_map", "-config"),
            ("server_secret", "-server-config"),
            ("cookie_secret", "-erlang-cookie"),
            ("admin_secret", "-admin"),
            ("broker_secret", "-broker"),
            ("queue_monitor_secret", "-queue-monitor"),
            ("tls_secret", "-tls"),
            ("service_account", "-server"),
        ):
            object.__setattr__(self, attribute, self.base + suffix)

    def pod_host(self, ordinal: int, namespace: str) -> str:
        return f"{self.statefulset}-{ordinal}.{self.headless_service}.{namespace}.svc.cluster.local"




def selector(names: ObjectNames) -> dict[str, str]:
    return labels_module.selector_labels(APP_NAME, names.base)


def object_labels(names: ObjectNames, args: RabbitMQClusterArgs) -> dict[str, str]:
    return labels_module.labels(APP_NAME, names.base, component="broker", version=str(args.version))


def metadata(
    name: str, names: ObjectNames, args: RabbitMQClusterArgs, **extra
) -> k8s.meta.v1.ObjectMetaArgs:
    extra.setdefault("namespace", args.namespace)
    return k8s.meta.v1.ObjectMetaArgs(name=name, labels=object_labels(names, args), **extra)
