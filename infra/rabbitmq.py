"""The platform's RabbitMQ: a highly-available cluster that loses no confirmed message.

Owns `RabbitMQCluster` (type ``hacelery:rabbitmq:RabbitMQCluster``) and one small pure builder per
Kubernetes object: generated secrets (Erlang cookie, admin and application users), the config
ConfigMap and Secret, headless + client Services, the StatefulSet (Parallel start, required
anti-affinity, zone spread, PVCs, memory request = limit, a startup check that proves the node
joined the cluster, a preStop that waits for quorum+1 and drains, restricted security), the
PodDisruptionBudget, the NetworkPolicy and the RBAC peer discovery uses.

What survives what (3 replicas): one node lost (crash, drain, zone outage) -> every quorum queue
keeps a majority and keeps accepting and confirming; two lost -> publishing is refused (never
silently accepted), nothing confirmed is lost, service resumes when a node returns. A pod 0 that
comes back with an empty volume joins the running cluster instead of forming its own (see
`infra.rabbitmq_config.entrypoint_script`), and a node that is not in the planned cluster never
becomes Ready.

Does not read stack config (everything arrives in `RabbitMQClusterArgs`), does not expose
anything outside the cluster (management and metrics are reached with `kubectl port-forward`),
does not create namespaces, and does not generate the runtime files (that is
`infra/rabbitmq_config.py`, shared with the local drill).
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import names as labels_module
from infra import pod_security
from infra import rabbitmq_config as config
from infra.quantities import QUANTITY, quantity_bytes
from infra.validation import check

DEFAULT_IMAGE = "rabbitmq:4.3.4-management"
"""Official image, pinned. 4.3: Raft metadata store only (no partition handling keys)."""

APP_NAME = "rabbitmq"
RABBITMQ_UID = 999  # the official image's rabbitmq user

AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
PROMETHEUS_PORT = 15692
EPMD_PORT = 4369
DISTRIBUTION_PORT = 25672
CLI_PORT_RANGE = (35672, 35682)
"""CLI tools (preStop, probes, `rabbitmqctl` from a peer pod) use this range for distribution."""

BROKER_URL_KEY = "broker_url"
"""Key in the `broker_secret_name` Secret holding Celery's `;`-separated failover list."""
QUEUE_MONITOR_URL_KEY = "host"
"""Key in the `queue_monitor_secret_name` Secret: management-API URL with the monitor user."""
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
    """Other namespaces whose pods may reach management (15672) and metrics (15692), e.g.
    KEDA's (queue-depth autoscaling) or Prometheus'. The platform's own namespace always may."""
    delivery_limit: int = 20
    """Redeliveries before a message is dead-lettered (a task that crashes its worker)."""
    dead_letter_queue: str = "dead-letter"
    file_descriptor_limit: int = 65536
    prestop_quorum_wait_seconds: int = 300
    """preStop waits this long for every quorum queue to keep a majority without this node."""
    drain_timeout_seconds: int = 120
    permit_transient_nonexclusive_queues: bool = True
    """4.3+: keep Celery's remote-control and event queues working (see rabbitmq_config)."""

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
            ("service_account", "-server"),
        ):
            object.__setattr__(self, attribute, self.base + suffix)

    def pod_host(self, ordinal: int, namespace: str) -> str:
        return f"{self.statefulset}-{ordinal}.{self.headless_service}.{namespace}.svc.cluster.local"


# ------------------------------------------------------------------------------ pure builders


def selector(names: ObjectNames) -> dict[str, str]:
    return labels_module.selector_labels(APP_NAME, names.base)


def object_labels(names: ObjectNames, args: RabbitMQClusterArgs) -> dict[str, str]:
    return labels_module.labels(APP_NAME, names.base, component="broker", version=str(args.version))


def metadata(
    name: str, names: ObjectNames, args: RabbitMQClusterArgs, **extra
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=args.namespace, labels=object_labels(names, args), **extra
    )


def broker_settings(names: ObjectNames, args: RabbitMQClusterArgs) -> config.BrokerSettings:
    memory = quantity_bytes(args.memory)
    return config.BrokerSettings(
        version=args.version,
        cluster_name=names.base,
        peer_discovery=config.KubernetesPeerDiscovery(
            headless_service=names.headless_service, namespace=args.namespace
        ),
        target_cluster_size=args.replicas,
        memory_high_watermark_bytes=int(memory * args.memory_high_watermark_ratio),
        disk_free_limit_bytes=quantity_bytes(args.disk_free_limit),
        definitions_path=f"{config.ContainerPaths().secret_dir}/definitions.json",
        permit_transient_nonexclusive_queues=args.permit_transient_nonexclusive_queues,
    )


def config_map_data(names: ObjectNames, args: RabbitMQClusterArgs) -> dict[str, str]:
    """Non-secret runtime files: rabbitmq.conf, enabled_plugins and the container scripts."""
    settings = broker_settings(names, args)
    return {
        "rabbitmq.conf": config.rabbitmq_conf(settings),
        "enabled_plugins": config.enabled_plugins(settings),
        "entrypoint.sh": config.entrypoint_script(
            version=args.version,
            statefulset=names.statefulset,
            headless_service=names.headless_service,
            namespace=args.namespace,
            replicas=args.replicas,
            file_descriptor_limit=args.file_descriptor_limit,
        ),
        "startup-check.sh": config.startup_check_script(
            version=args.version, expected_members=args.replicas
        ),
        "pre-stop.sh": config.prestop_script(
            quorum_wait_seconds=args.prestop_quorum_wait_seconds,
            drain_timeout_seconds=args.drain_timeout_seconds,
        ),
    }


def server_secret_data(
    args: RabbitMQClusterArgs, admin_password: str, app_password: str, monitor_password: str
) -> dict[str, str]:
    """Secret runtime files: the default (admin) user snippet and the definitions."""
    return {
        "default_user.conf": config.default_user_conf(args.admin_username, admin_password),
        "definitions.json": config.definitions_json(
            version=args.version,
            vhost=args.vhost,
            admin_username=args.admin_username,
            admin_password=admin_password,
            app_username=args.app_username,
            app_password=app_password,
            poison=args.poison_policy,
            monitor_username=args.monitor_username,
            monitor_password=monitor_password,
        ),
    }


def queue_monitor_url(names: ObjectNames, args: RabbitMQClusterArgs, password: str) -> str:
    """Management-API URL for KEDA's RabbitMQ scaler (protocol http), via the client Service."""
    user = urllib.parse.quote(args.monitor_username, safe="")
    secret = urllib.parse.quote(password, safe="")
    vhost = urllib.parse.quote(args.vhost, safe="")
    host = f"{names.client_service}.{args.namespace}.svc.cluster.local"
    return f"http://{user}:{secret}@{host}:{MANAGEMENT_PORT}/{vhost}"


def broker_urls(names: ObjectNames, args: RabbitMQClusterArgs, app_password: str) -> list[str]:
    """One AMQP URL per pod through the headless Service's per-pod DNS names."""
    user = urllib.parse.quote(args.app_username, safe="")
    password = urllib.parse.quote(app_password, safe="")
    vhost = urllib.parse.quote(args.vhost, safe="")
    return [
        f"amqp://{user}:{password}@{names.pod_host(ordinal, args.namespace)}:{AMQP_PORT}/{vhost}"
        for ordinal in range(args.replicas)
    ]


def broker_url(names: ObjectNames, args: RabbitMQClusterArgs, app_password: str) -> str:
    """Celery's failover list: `;`-separated, tried in order, next one on connection loss."""
    return ";".join(broker_urls(names, args, app_password))


def _port(name: str, port: int) -> k8s.core.v1.ServicePortArgs:
    return k8s.core.v1.ServicePortArgs(name=name, port=port, target_port=name, protocol="TCP")


def headless_service_args(names: ObjectNames, args: RabbitMQClusterArgs) -> dict:
    return dict(
        metadata=metadata(names.headless_service, names, args),
        spec=k8s.core.v1.ServiceSpecArgs(
            cluster_ip="None",
            # Peers must resolve each other while still booting (not Ready): that is how a
            # node joins the cluster at all.
            publish_not_ready_addresses=True,
            selector=selector(names),
            ports=[
                _port("epmd", EPMD_PORT),
                _port("cluster-links", DISTRIBUTION_PORT),
                _port("amqp", AMQP_PORT),
            ],
        ),
    )


def client_service_args(names: ObjectNames, args: RabbitMQClusterArgs) -> dict:
    return dict(
        metadata=metadata(names.client_service, names, args),
        spec=k8s.core.v1.ServiceSpecArgs(
            # ClusterIP only: management and metrics are reached by port-forward, never publicly.
            type="ClusterIP",
            selector=selector(names),
            ports=[
                _port("amqp", AMQP_PORT),
                _port("management", MANAGEMENT_PORT),
                _port("prometheus", PROMETHEUS_PORT),
            ],
        ),
    )


def affinity(names: ObjectNames, args: RabbitMQClusterArgs) -> k8s.core.v1.AffinityArgs:
    """Required: two replicas on one node would let one node failure take a majority."""
    node_affinity = None
    if args.zones:
        node_affinity = k8s.core.v1.NodeAffinityArgs(
            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                node_selector_terms=[
                    k8s.core.v1.NodeSelectorTermArgs(
                        match_expressions=[
                            k8s.core.v1.NodeSelectorRequirementArgs(
                                key="topology.kubernetes.io/zone",
                                operator="In",
                                values=list(args.zones),
                            )
                        ]
                    )
                ]
            )
        )
    return k8s.core.v1.AffinityArgs(
        node_affinity=node_affinity,
        pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
            required_during_scheduling_ignored_during_execution=[
                k8s.core.v1.PodAffinityTermArgs(
                    topology_key="kubernetes.io/hostname",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
                )
            ]
        ),
    )


def topology_spread(
    names: ObjectNames, args: RabbitMQClusterArgs
) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    if not args.zones:
        return []
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            topology_key="topology.kubernetes.io/zone",
            max_skew=1,
            # DoNotSchedule + minDomains: with a zone short of nodes a pod waits rather than
            # doubling up in another zone, where one zone outage would then cost a majority.
            when_unsatisfiable="DoNotSchedule",
            min_domains=min(len(args.zones), args.replicas),
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
        )
    ]


def _script_probe(script: str, **timing) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        exec_=k8s.core.v1.ExecActionArgs(command=["/bin/bash", f"/etc/rabbitmq/config/{script}"]),
        **timing,
    )


def container(names: ObjectNames, args: RabbitMQClusterArgs) -> k8s.core.v1.ContainerArgs:
    paths = config.ContainerPaths()
    limits = {"memory": args.memory}
    if args.cpu_limit:
        limits["cpu"] = args.cpu_limit
    field_ref = k8s.core.v1.ObjectFieldSelectorArgs
    env = [
        k8s.core.v1.EnvVarArgs(
            name="MY_POD_NAME",
            value_from=k8s.core.v1.EnvVarSourceArgs(
                field_ref=field_ref(field_path="metadata.name")
            ),
        ),
        k8s.core.v1.EnvVarArgs(
            name="MY_POD_NAMESPACE",
            value_from=k8s.core.v1.EnvVarSourceArgs(
                field_ref=field_ref(field_path="metadata.namespace")
            ),
        ),
        k8s.core.v1.EnvVarArgs(name="K8S_SERVICE_NAME", value=names.headless_service),
        # Stable DNS node names: a rescheduled pod keeps its identity (and its queue replicas).
        k8s.core.v1.EnvVarArgs(name="RABBITMQ_USE_LONGNAME", value="true"),
        k8s.core.v1.EnvVarArgs(
            name="RABBITMQ_NODENAME",
            value="rabbit@$(MY_POD_NAME).$(K8S_SERVICE_NAME).$(MY_POD_NAMESPACE)",
        ),
        k8s.core.v1.EnvVarArgs(
            name="K8S_HOSTNAME_SUFFIX", value=".$(K8S_SERVICE_NAME).$(MY_POD_NAMESPACE)"
        ),
        k8s.core.v1.EnvVarArgs(name="RABBITMQ_CONFIG_FILES", value=paths.confd_dir),
        k8s.core.v1.EnvVarArgs(
            name="RABBITMQ_ENABLED_PLUGINS_FILE", value=f"{paths.config_dir}/enabled_plugins"
        ),
        k8s.core.v1.EnvVarArgs(name="HOME", value=paths.data_dir),
    ]
    ports = [
        k8s.core.v1.ContainerPortArgs(name=name, container_port=port, protocol="TCP")
        for name, port in (
            ("amqp", AMQP_PORT),
            ("management", MANAGEMENT_PORT),
            ("prometheus", PROMETHEUS_PORT),
            ("epmd", EPMD_PORT),
            ("cluster-links", DISTRIBUTION_PORT),
        )
    ]
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="data", mount_path=paths.data_dir),
        k8s.core.v1.VolumeMountArgs(name="config", mount_path=paths.config_dir, read_only=True),
        k8s.core.v1.VolumeMountArgs(
            name="server-secret", mount_path=paths.secret_dir, read_only=True
        ),
        k8s.core.v1.VolumeMountArgs(
            name="erlang-cookie", mount_path=paths.cookie_dir, read_only=True
        ),
        k8s.core.v1.VolumeMountArgs(name="confd", mount_path=paths.confd_dir),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108 (emptyDir)
        k8s.core.v1.VolumeMountArgs(name="logs", mount_path="/var/log/rabbitmq"),
    ]
    return k8s.core.v1.ContainerArgs(
        name="rabbitmq",
        image=args.image,
        command=["/bin/bash", f"{paths.config_dir}/entrypoint.sh"],
        env=env,
        ports=ports,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": args.cpu_request, "memory": args.memory}, limits=limits
        ),
        # Startup: the node runs AND is a member of a cluster of the planned size. A node that
        # formed a cluster of its own never passes, so it never receives traffic. Generous:
        # Raft log recovery after a crash can take minutes on a large volume.
        startup_probe=_script_probe(
            "startup-check.sh", period_seconds=10, timeout_seconds=30, failure_threshold=90
        ),
        # Readiness: the AMQP listener accepts connections (cheap; runs every 10 s).
        readiness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="amqp"),
            period_seconds=10,
            timeout_seconds=5,
            failure_threshold=3,
        ),
        # No liveness probe on purpose: restarting a node that is slow because it recovers its
        # Raft logs makes the recovery start over; a crashed beam exits and is restarted anyway.
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(
                    command=["/bin/bash", f"{paths.config_dir}/pre-stop.sh"]
                )
            )
        ),
        volume_mounts=mounts,
        security_context=pod_security.container_security_context(RABBITMQ_UID),
    )


def volumes(names: ObjectNames) -> list[k8s.core.v1.VolumeArgs]:
    empty = k8s.core.v1.EmptyDirVolumeSourceArgs
    return [
        k8s.core.v1.VolumeArgs(
            name="config",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=names.config_map, default_mode=0o444
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="server-secret",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=names.server_secret, default_mode=0o440
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="erlang-cookie",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=names.cookie_secret, default_mode=0o440
            ),
        ),
        k8s.core.v1.VolumeArgs(name="confd", empty_dir=empty(medium="Memory", size_limit="1Mi")),
        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=empty(size_limit="64Mi")),
        k8s.core.v1.VolumeArgs(name="logs", empty_dir=empty(size_limit="64Mi")),
    ]


def volume_claim_template(args: RabbitMQClusterArgs) -> k8s.core.v1.PersistentVolumeClaimArgs:
    return k8s.core.v1.PersistentVolumeClaimArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=args.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": args.storage_size}
            ),
        ),
    )


def statefulset_spec(
    names: ObjectNames, args: RabbitMQClusterArgs, config_checksum: str = ""
) -> k8s.apps.v1.StatefulSetSpecArgs:
    return k8s.apps.v1.StatefulSetSpecArgs(
        replicas=args.replicas,
        service_name=names.headless_service,
        # Parallel: every pod starts at once (peer discovery decides who forms the cluster);
        # OrderedReady would deadlock a full restart, since pod 0 is only Ready once others
        # are back.
        pod_management_policy="Parallel",
        update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
        # Retain: deleting or scaling down the StatefulSet never deletes queue data.
        persistent_volume_claim_retention_policy=(
            k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                when_deleted="Retain", when_scaled="Retain"
            )
        ),
        volume_claim_templates=[volume_claim_template(args)],
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels=object_labels(names, args),
                # A config change rolls the pods (one at a time, each draining first).
                annotations={"hacelery.io/config-checksum": config_checksum}
                if config_checksum
                else None,
            ),
            spec=k8s.core.v1.PodSpecArgs(
                service_account_name=names.service_account,
                # 4.1+ discovery needs no Kubernetes API: no token in the pod at all.
                automount_service_account_token=not config.uses_seed_node_discovery(args.version),
                termination_grace_period_seconds=args.termination_grace_seconds,
                security_context=pod_security.pod_security_context(RABBITMQ_UID),
                affinity=affinity(names, args),
                topology_spread_constraints=topology_spread(names, args) or None,
                containers=[container(names, args)],
                volumes=volumes(names),
            ),
        ),
    )


def pod_disruption_budget_spec(names: ObjectNames) -> k8s.policy.v1.PodDisruptionBudgetSpecArgs:
    # One voluntary disruption at a time: a node drain can never take a quorum majority.
    return k8s.policy.v1.PodDisruptionBudgetSpecArgs(
        max_unavailable=1,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
    )


def network_policy_spec(names: ObjectNames,
                        args: RabbitMQClusterArgs) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Ingress allow-list; anything not listed (including from outside the cluster) is dropped."""
    platform_pods = k8s.networking.v1.NetworkPolicyPeerArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels=labels_module.platform_pod_selector()
        )
    )
    rabbitmq_pods = k8s.networking.v1.NetworkPolicyPeerArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names))
    )

    management_peers = [platform_pods] + [
        k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={"kubernetes.io/metadata.name": namespace}))
        for namespace in args.management_client_namespaces
    ]

    def tcp(port: int, end_port: int | None = None) -> k8s.networking.v1.NetworkPolicyPortArgs:
        return k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port, end_port=end_port)

    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(names)),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[platform_pods], ports=[tcp(AMQP_PORT)]
            ),
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[rabbitmq_pods],
                ports=[tcp(EPMD_PORT), tcp(DISTRIBUTION_PORT), tcp(*CLI_PORT_RANGE)],
            ),
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=management_peers, ports=[tcp(MANAGEMENT_PORT), tcp(PROMETHEUS_PORT)]
            ),
        ],
    )


def role_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    # Before 4.1 the discovery plugin lists the headless Service's endpoints; nothing more.
    return [k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["endpoints"], verbs=["get"])]


def config_checksum(data: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key].encode() + b"\0")
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------- component


class RabbitMQCluster(pulumi.ComponentResource):
    """A RabbitMQ cluster on Kubernetes with quorum queues as the replicated default."""

    broker_url: pulumi.Output[str]
    """Secret: Celery's failover list, one amqp:// URL per pod, `;`-separated."""
    broker_secret_name: pulumi.Output[str]
    """Kubernetes Secret holding `broker_url` under key BROKER_URL_KEY; workloads reference it."""
    client_service_name: pulumi.Output[str]
    """ClusterIP Service for AMQP (5672), management (15672) and metrics (15692)."""
    headless_service_name: pulumi.Output[str]
    """Headless Service giving every pod a stable DNS name."""
    admin_secret_name: pulumi.Output[str]
    """Kubernetes Secret with the administrator's `username` and `password`."""
    queue_monitor_secret_name: pulumi.Output[str]
    """Kubernetes Secret with the monitor user's management-API URL under QUEUE_MONITOR_URL_KEY
    (KEDA's RabbitMQ scaler, protocol http)."""
    statefulset_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: RabbitMQClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:rabbitmq:RabbitMQCluster", name, None, opts)
        names = ObjectNames(name)
        child = pulumi.ResourceOptions(parent=self)

        def password(suffix: str, length: int) -> random.RandomPassword:
            # Letters and digits only: safe in URLs, rabbitmq.conf and shell without escaping.
            return random.RandomPassword(
                f"{name}-{suffix}", length=length, special=False, opts=child
            )

        cookie = password("erlang-cookie", 64)
        admin_password = password("admin-password", 32)
        app_password = password("app-password", 32)
        monitor_password = password("monitor-password", 32)

        def secret(suffix: str, object_name: str,
                   data: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
            # Each value is marked secret on its own, so the keys stay reviewable in a plan.
            return k8s.core.v1.Secret(
                f"{name}-{suffix}", metadata=metadata(object_name, names, args), type="Opaque",
                string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
                opts=child)

        secret("erlang-cookie", names.cookie_secret, {"cookie": cookie.result})
        server_files = pulumi.Output.all(admin_password.result, app_password.result,
                                         monitor_password.result).apply(
            lambda passwords: server_secret_data(args, *passwords))
        server_secret = secret(
            "server-config", names.server_secret,
            {key: server_files.apply(lambda files, key=key: files[key])
             for key in ("default_user.conf", "definitions.json")})
        admin_secret = secret(
            "admin", names.admin_secret,
            {ADMIN_USERNAME_KEY: args.admin_username, ADMIN_PASSWORD_KEY: admin_password.result})
        url = pulumi.Output.secret(app_password.result.apply(
            lambda p: broker_url(names, args, p)))
        broker_secret = secret("broker", names.broker_secret, {BROKER_URL_KEY: url})
        monitor_secret = secret(
            "queue-monitor", names.queue_monitor_secret,
            {QUEUE_MONITOR_URL_KEY: monitor_password.result.apply(
                lambda p: queue_monitor_url(names, args, p))})

        data = config_map_data(names, args)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=metadata(names.config_map, names, args),
            data=data,
            opts=child,
        )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=metadata(names.service_account, names, args),
            automount_service_account_token=False,
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-peer-discovery",
            metadata=metadata(f"{names.base}-peer-discovery", names, args),
            rules=role_rules(),
            opts=child,
        )
        role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-peer-discovery-binding",
            metadata=metadata(f"{names.base}-peer-discovery", names, args),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount",
                    name=service_account.metadata.name,
                    namespace=args.namespace,
                )
            ],
            opts=child,
        )

        headless = k8s.core.v1.Service(
            f"{name}-headless", **headless_service_args(names, args), opts=child
        )
        client = k8s.core.v1.Service(
            f"{name}-client", **client_service_args(names, args), opts=child
        )
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=metadata(names.statefulset, names, args),
            spec=statefulset_spec(names, args, config_checksum(data)),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[config_map, server_secret, headless, role_binding],
                # Pods become Ready only once the whole cluster formed; Pulumi's await would
                # otherwise time out on a slow first formation and mark the update failed.
                custom_timeouts=pulumi.CustomTimeouts(create="20m", update="30m"),
            ),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata(names.base, names, args),
            spec=pod_disruption_budget_spec(names),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=metadata(names.base, names, args),
            spec=network_policy_spec(names, args),
            opts=child,
        )

        self.broker_url = url
        self.broker_secret_name = broker_secret.metadata.name
        self.client_service_name = client.metadata.name
        self.headless_service_name = headless.metadata.name
        self.admin_secret_name = admin_secret.metadata.name
        self.statefulset_name = statefulset.metadata.name
        self.queue_monitor_secret_name = monitor_secret.metadata.name
        self.register_outputs(
            {
                "broker_url": self.broker_url,
                "broker_secret_name": self.broker_secret_name,
                "client_service_name": self.client_service_name,
                "headless_service_name": self.headless_service_name,
                "admin_secret_name": self.admin_secret_name,
                "statefulset_name": self.statefulset_name,
                "queue_monitor_secret_name": self.queue_monitor_secret_name,
            }
        )
