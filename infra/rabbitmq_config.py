"""Every runtime file a RabbitMQ node of the platform reads, as pure functions of typed settings.

Owns: `rabbitmq.conf` (one file for every supported version, keys gated by version),
`enabled_plugins`, the definitions document (vhost with quorum as its default queue type, the
admin and application users, permissions, the poison-message policy and its dead-letter target),
the secret `conf.d` snippet holding the default (admin) user, and the shell scripts the container
runs (entrypoint, startup check, preStop). The Kubernetes component (`infra/rabbitmq.py`) and
the local cluster drill (`drills/rabbitmq_cluster.py`) both call these functions, so the drill
boots nodes from the files that will be deployed; only ports, node names, paths and the peer
discovery backend differ on one machine.

Does not import pulumi, read environment variables or touch the network; does not decide sizes
(the component derives bytes from the container limits and passes them in).

Version facts the gates below encode (RabbitMQ release notes / docs):
- 3.10 refuses to boot on an unknown key, so every key newer than 3.10 is emitted only for the
  versions that know it.
- `default_queue_type` in rabbitmq.conf appeared during 3.13.x; it is emitted from 4.0 on. Every
  version (3.10 included) also gets quorum as the *vhost* default through definitions metadata,
  which is what makes Celery's queues quorum queues on the local 3.10 drill.
- 4.0 added the ANONYMOUS SASL mechanism (logging in as `anonymous_login_user`, guest by
  default); `anonymous_login_user = none` and an explicit mechanism list switch it off.
- 4.1 replaced Kubernetes peer discovery: nodes join the pod with the lowest ordinal (the seed);
  no API access is needed and the old `cluster_formation.k8s.*` keys are ignored with warnings.
- 4.3 removed Mnesia: `cluster_partition_handling` keys are accepted but have no effect (the
  Raft-based metadata store decides by majority), so they are omitted from 4.3 on; 4.3 also
  rejects transient non-exclusive queues unless permitted.
- 3.13 added continuous membership reconciliation of quorum queues (a queue that lost a member
  grows back to the target size by itself); 3.10 has no such key.

Silent faults (measured with `python -m drills.silent_faults`, RabbitMQ 3.10.8, every node in
its own network namespace, 25 s faults; the README has the full table): see the comments at
`net_ticktime`, `cluster_partition_handling` and the reconciliation keys in `rabbitmq_conf`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------

_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class RabbitMQVersion:
    """A RabbitMQ release, comparable, e.g. ``RabbitMQVersion.parse("4.3.4")``."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> RabbitMQVersion:
        match = _VERSION_PATTERN.match(text.strip())
        if not match:
            raise ValueError(
                f"RabbitMQ version {text!r} is not of the form MAJOR.MINOR[.PATCH] (e.g. '4.3.4')"
            )
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0))

    @classmethod
    def from_image(cls, image: str) -> RabbitMQVersion:
        """The version in an official image reference: ``rabbitmq:4.3.4-management[@sha256:..]``."""
        reference = image.split("@", 1)[0]
        name, _, tag = reference.rpartition(":")
        if not name or "/" in tag or not _VERSION_PATTERN.match(tag):
            raise ValueError(
                f"image {image!r} has no version tag (expected e.g. 'rabbitmq:4.3.4-management'); "
                "pin a tag or pass rabbitmq_version explicitly"
            )
        return cls.parse(tag)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


OLDEST_SUPPORTED = RabbitMQVersion(3, 10)
"""Debian 12's rabbitmq-server (local drills); older ones lack at-least-once dead lettering."""
NEWEST_SUPPORTED_MAJOR = 4


def check_supported(version: RabbitMQVersion) -> None:
    if version < OLDEST_SUPPORTED or version.major > NEWEST_SUPPORTED_MAJOR:
        raise ValueError(
            f"RabbitMQ {version} is not supported: use {OLDEST_SUPPORTED.major}."
            f"{OLDEST_SUPPORTED.minor} or later within {NEWEST_SUPPORTED_MAJOR}.x"
        )


def has_node_wide_default_queue_type(version: RabbitMQVersion) -> bool:
    return version.at_least(4, 0)


def has_anonymous_login(version: RabbitMQVersion) -> bool:
    return version.at_least(4, 0)


def uses_seed_node_discovery(version: RabbitMQVersion) -> bool:
    """4.1+: Kubernetes discovery joins the lowest ordinal and needs no Kubernetes API access."""
    return version.at_least(4, 1)


def has_partition_handling(version: RabbitMQVersion) -> bool:
    return not version.at_least(4, 3)


def has_membership_reconciliation(version: RabbitMQVersion) -> bool:
    """3.13+: quorum queues grow back to their target size by themselves."""
    return version.at_least(3, 13)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# rabbitmq.conf and enabled_plugins
# ---------------------------------------------------------------------------------------------


def _listen(address: str | None, port: int) -> str:
    return f"{address}:{port}" if address else str(port)


def rabbitmq_conf(settings: BrokerSettings) -> str:
    """The cluster-wide rabbitmq.conf (no secrets: the default user lives in a Secret snippet)."""
    version = settings.version
    listeners = settings.listeners
    lines: list[str] = [
        f"# Generated by infra/rabbitmq_config.py for RabbitMQ {version}; do not edit by hand.",
        f"cluster_name = {settings.cluster_name}",
        "",
        "## Cluster formation",
    ]
    discovery = settings.peer_discovery
    if isinstance(discovery, KubernetesPeerDiscovery):
        lines.append("cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s")
        if not uses_seed_node_discovery(version):
            # Before 4.1 the plugin lists the headless Service's endpoints through the API and
            # builds node names from pod hostnames; 4.1+ ignores these keys (and warns).
            lines += [
                "cluster_formation.k8s.host = kubernetes.default.svc",
                "cluster_formation.k8s.address_type = hostname",
                f"cluster_formation.k8s.service_name = {discovery.headless_service}",
                "cluster_formation.k8s.hostname_suffix = "
                f".{discovery.headless_service}.{discovery.namespace}",
            ]
        # 4.1+: the pod with the lowest ordinal is the seed; the entrypoint redirects a blank
        # seed to a live peer (see entrypoint_script) so a lost volume never forms a 2nd cluster.
    else:
        lines.append("cluster_formation.peer_discovery_backend = classic_config")
        lines += [
            f"cluster_formation.classic_config.nodes.{index} = {node}"
            for index, node in enumerate(discovery.nodes, start=1)
        ]
        if not version.at_least(4, 0):
            # Before 4.0 a backend without locking sleeps a random 5-60 s before forming; the
            # drill starts the first node alone, so the wait only costs time.
            lines += [
                "cluster_formation.randomized_startup_delay_range.min = 0",
                "cluster_formation.randomized_startup_delay_range.max = 1",
            ]
    lines += [
        # Quorum queues and the metadata store wait for this many members on first formation
        # instead of starting with fewer replicas than planned.
        f"cluster_formation.target_cluster_size_hint = {settings.target_cluster_size}",
    ]
    if has_partition_handling(version):
        # autoheal, not pause_minority (measured, RabbitMQ 3.10.8, 10 s tick): a node frozen
        # for longer than the tick time (a stalled VM) is declared down by its peers, and when
        # it resumes pause_minority never pauses it (it sees the others again at once), so the
        # cluster stayed partitioned, with no automatic recovery, after every freeze (2 of 2,
        # > 300 s); it did recover partitions (3 of 3, 8-14 s). autoheal restarts the losing
        # side: 17 of 19 freezes and partitions converged with no manual step (most within
        # 20 s, the slowest 148 s); 2 partitioned leaders did not within 300 s (a quorum queue
        # left with 2 of 3 members, which 3.13+ repairs by itself, see below; and autoheal
        # restarting the minority node again and again while one winner kept a stale partition
        # record). Data safety does not rest on pausing: every queue is a quorum queue, and one
        # on a minority side has no quorum, so a write there is never confirmed (clients time
        # out and fail over). 4.3+ has no Mnesia; Raft decides.
        lines.append(f"cluster_partition_handling = {settings.partition_handling}")
    lines += [
        # 10 s, not Erlang's 60 s (measured, RabbitMQ 3.10.8): while a silent peer is still
        # believed alive, metadata writes (the bindings every client declares when it
        # reconnects) wait for it, so with 60 s clients could not resume before a 25 s freeze
        # or partition ended (stalls of 25.5 and 28.8 s); with 10 s they resumed after 7.9-18 s
        # (median 11.5 s over 8 runs), with 15 s after 18 s. Ticks go out every 2.5 s; a peer
        # silent for ~10-12.5 s is declared down. Cost: a node that cannot send a tick for 10 s
        # (CPU starvation) is taken for dead, and autoheal restarts it.
        f"net_ticktime = {settings.net_ticktime_seconds}",
    ]
    lines += [
        "",
        "## Queues",
        # New leaders go to the node with the fewest, so one node does not carry every queue.
        "queue_leader_locator = balanced",
    ]
    if has_membership_reconciliation(version) and settings.target_cluster_size > 1:
        # A quorum queue that lost a member (measured on 3.10 after a partitioned leader healed:
        # the dead-letter queue kept 2 of 3 members until `rabbitmq-queues grow`) grows back to
        # the cluster size by itself. Never removes members: a node that is away comes back.
        lines += [
            "quorum_queue.continuous_membership_reconciliation.enabled = true",
            "quorum_queue.continuous_membership_reconciliation.target_group_size = "
            f"{settings.target_cluster_size}",
            "quorum_queue.continuous_membership_reconciliation.auto_remove = false",
        ]
    if has_node_wide_default_queue_type(version):
        # Every vhost (not only ours) defaults to replicated queues.
        lines.append("default_queue_type = quorum")
    if version.at_least(4, 3) and settings.permit_transient_nonexclusive_queues:
        lines.append("deprecated_features.permit.transient_nonexcl_queues = true")
    lines += [
        "",
        "## Resource limits",
        # Absolute, below the container limit: the OOM killer must never beat flow control.
        f"vm_memory_high_watermark.absolute = {settings.memory_high_watermark_bytes}",
        # Publishers are blocked before the volume fills; a full disk corrupts Raft logs.
        f"disk_free_limit.absolute = {settings.disk_free_limit_bytes}",
        "",
        "## Access",
        # guest may only log in over loopback (a pod's own CLI), never from the network.
        "loopback_users.guest = true",
        # Only username/password mechanisms; 4.0's ANONYMOUS is left out of the list.
        "auth_mechanisms.1 = PLAIN",
        "auth_mechanisms.2 = AMQPLAIN",
    ]
    if has_anonymous_login(version):
        lines.append("anonymous_login_user = none")
    lines += [
        # Users, vhost, permissions and the poison-message policy, re-applied on every boot.
        f"load_definitions = {settings.definitions_path}",
        "",
        "## Listeners",
        f"listeners.tcp.default = {_listen(listeners.bind_address, listeners.amqp_port)}",
        f"management.tcp.port = {listeners.management_port}",
        f"prometheus.tcp.port = {listeners.prometheus_port}",
    ]
    if listeners.bind_address:
        lines += [
            f"management.tcp.ip = {listeners.bind_address}",
            f"prometheus.tcp.ip = {listeners.bind_address}",
        ]
    lines += [
        "",
        "## Logging: to stdout only (the container runtime keeps it); no log files to rotate.",
        "log.console = true",
        "log.console.level = info",
        "log.file = false",
        "",
    ]
    return "\n".join(lines)


def enabled_plugins(settings: BrokerSettings) -> str:
    """The Erlang-term plugin list; the k8s discovery plugin only where it is used."""
    plugins = ["rabbitmq_management", "rabbitmq_prometheus"]
    if isinstance(settings.peer_discovery, KubernetesPeerDiscovery):
        plugins.append("rabbitmq_peer_discovery_k8s")
    return "[" + ",".join(plugins) + "].\n"


def default_user_conf(username: str, password: str) -> str:
    """Secret conf.d snippet: the first boot creates this administrator instead of guest."""
    _check_credential("username", username)
    _check_credential("password", password)
    return f"default_user = {username}\ndefault_pass = {password}\n"


def _check_credential(what: str, value: str) -> None:
    # rabbitmq.conf values end at the line; a newline or '#' would truncate or inject keys.
    if not value or any(character in value for character in "\n\r#"):
        raise ValueError(f"{what} must be non-empty and free of newlines and '#'")


# ---------------------------------------------------------------------------------------------
# Definitions (users, vhost, permissions, policy)
# ---------------------------------------------------------------------------------------------

ADMIN_TAGS = ("administrator",)
APPLICATION_TAGS: tuple[str, ...] = ()
MONITOR_TAGS = ("monitoring",)
POISON_POLICY_NAME = "poison-messages"


def password_hash(password: str, *, salt: bytes) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256` format: base64(salt + sha256(salt + pw))."""
    if len(salt) != 4:
        raise ValueError("salt must be 4 bytes (RabbitMQ's format)")
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def stable_salt(username: str, password: str) -> bytes:
    """A salt derived from the credentials, so the rendered Secret only changes with them.

    A fresh random salt would change the Secret on every `pulumi up` for nothing. Passwords are
    long random strings, so the usual reason for random salts (equal human passwords) is absent.
    """
    return hashlib.sha256(f"hacelery-salt:{username}:{password}".encode()).digest()[:4]


@dataclass(frozen=True, kw_only=True)
class PoisonMessagePolicy:
    """What happens to a message that keeps failing: dead-lettered after ``delivery_limit``."""

    delivery_limit: int = 20
    dead_letter_exchange: str = "dead-letter"
    dead_letter_queue: str = "dead-letter"

    def __post_init__(self) -> None:
        if not 1 <= self.delivery_limit <= 1000:
            raise ValueError(
                f"PoisonMessagePolicy.delivery_limit: {self.delivery_limit} — use 1..1000 "
                "(redeliveries before a message is dead-lettered)"
            )
        for name in ("dead_letter_exchange", "dead_letter_queue"):
            value = getattr(self, name)
            if not value or value.startswith("amq."):
                raise ValueError(
                    f"PoisonMessagePolicy.{name}: {value!r} — use a non-empty name outside 'amq.'"
                )


def definitions(
    *,
    version: RabbitMQVersion,
    vhost: str,
    admin_username: str,
    admin_password: str,
    app_username: str,
    app_password: str,
    poison: PoisonMessagePolicy,
    monitor_username: str | None = None,
    monitor_password: str | None = None,
) -> dict:
    """The definitions document imported at every boot (it holds password hashes: a Secret).

    The optional monitor user (tag `monitoring`, read-only on the vhost) is what an autoscaler
    uses to read queue depths from the management API.
    """
    check_supported(version)
    user_names = [admin_username, app_username] + ([monitor_username] if monitor_username else [])
    if len(set(user_names)) != len(user_names):
        raise ValueError("admin, application and monitor users must differ")
    accounts = [(admin_username, admin_password, ADMIN_TAGS),
                (app_username, app_password, APPLICATION_TAGS)]
    if monitor_username is not None:
        if not monitor_password:
            raise ValueError("monitor_password is required with monitor_username")
        accounts.append((monitor_username, monitor_password, MONITOR_TAGS))
    users = [
        {
            "name": name,
            "password_hash": password_hash(password, salt=stable_salt(name, password)),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": list(tags),
        }
        for name, password, tags in accounts
    ]
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "rabbit_version": str(version),
        "users": users,
        "vhosts": [
            {
                "name": vhost,
                # Clients that declare a durable queue without x-queue-type get a quorum queue;
                # exclusive/auto-delete queues fall back to classic (they cannot be quorum).
                "metadata": {
                    "description": "ha-celery broker vhost",
                    "tags": [],
                    "default_queue_type": "quorum",
                },
            }
        ],
        "permissions": [
            {"user": admin_username, "vhost": vhost, **everything},
            {"user": app_username, "vhost": vhost, **everything},
        ] + ([{"user": monitor_username, "vhost": vhost, "configure": "^$", "write": "^$",
               "read": ".*"}] if monitor_username else []),
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [
            {
                "vhost": vhost,
                "name": POISON_POLICY_NAME,
                # Every quorum queue except the dead-letter queue itself (no DLX loop).
                "pattern": f"^(?!{re.escape(poison.dead_letter_queue)}$).*",
                # Queue-type targets appeared in 3.12; 3.10 aborts the whole definitions import
                # (queues, bindings too) on an unknown value, logging nothing.
                "apply-to": "quorum_queues" if version.at_least(3, 12) else "queues",
                "priority": 0,
                "definition": {
                    # A message redelivered this often (worker crash loop) is moved aside
                    # instead of blocking the queue forever.
                    "delivery-limit": poison.delivery_limit,
                    "dead-letter-exchange": poison.dead_letter_exchange,
                    # at-least-once: the message leaves the source only once the target
                    # confirmed it; this strategy requires reject-publish overflow.
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                },
            }
        ],
        "queues": [
            {
                "name": poison.dead_letter_queue,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            }
        ],
        "exchanges": [
            {
                "name": poison.dead_letter_exchange,
                "vhost": vhost,
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "bindings": [
            {
                "source": poison.dead_letter_exchange,
                "vhost": vhost,
                "destination": poison.dead_letter_queue,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        ],
    }


def definitions_json(**kwargs) -> str:
    return json.dumps(definitions(**kwargs), indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------
# Container scripts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ContainerPaths:
    """Where the pod mounts things (the drill does not use these)."""

    config_dir: str = "/etc/rabbitmq/config"
    """ConfigMap: rabbitmq.conf, enabled_plugins, scripts (read-only)."""
    secret_dir: str = "/etc/rabbitmq/secret"
    """Secret: default_user.conf, definitions.json (read-only)."""
    cookie_dir: str = "/etc/rabbitmq/cookie"
    """Secret: the Erlang cookie (read-only; copied to $HOME with owner-only mode)."""
    confd_dir: str = "/etc/rabbitmq/conf.d"
    """emptyDir: the conf.d RabbitMQ reads (RABBITMQ_CONFIG_FILES)."""
    data_dir: str = "/var/lib/rabbitmq"
    """The PVC (also $HOME, holding .erlang.cookie)."""


def entrypoint_script(
    *,
    version: RabbitMQVersion,
    statefulset: str,
    headless_service: str,
    namespace: str,
    replicas: int,
    file_descriptor_limit: int,
    paths: ContainerPaths = ContainerPaths(),
) -> str:
    """The container command: assemble conf.d, install the cookie, guard the seed, exec the node.

    Seed guard (4.1+): Kubernetes discovery lets only the lowest ordinal form a cluster and makes
    the others join it. If pod 0 comes back with an empty volume while its peers run, it would
    form a NEW one-node cluster. So a pod-0 with no data first asks every peer whether its
    RabbitMQ is running; if one is, that peer becomes the seed for this boot and pod 0 joins the
    existing cluster. On first deployment no peer is running yet (they are waiting for pod 0),
    so pod 0 forms the cluster as usual.
    """
    check_supported(version)
    quote = shlex.quote
    script = f"""#!/bin/bash
# Generated by infra/rabbitmq_config.py for RabbitMQ {version}.
set -euo pipefail
confd={quote(paths.confd_dir)}
install -m 0600 {quote(paths.config_dir)}/rabbitmq.conf "$confd/10-rabbitmq.conf"
install -m 0600 {quote(paths.secret_dir)}/default_user.conf "$confd/20-default-user.conf"
# Erlang refuses a cookie readable by others; Secret volumes cannot give uid 999 mode 0400.
install -m 0400 {quote(paths.cookie_dir)}/cookie "$HOME/.erlang.cookie"

# Queues hold one file per segment and clients one socket each: raise the soft limit as far as
# the runtime's hard limit allows (no privilege needed for that).
wanted={file_descriptor_limit}
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$wanted" ]; then
  echo "file descriptor hard limit $hard is below $wanted; using $hard" >&2
  wanted=$hard
fi
ulimit -n "$wanted"
"""
    if uses_seed_node_discovery(version):
        script += f"""
pod=${{MY_POD_NAME:-$(hostname)}}
ordinal=${{pod##*-}}
node_dir={quote(paths.data_dir)}/mnesia/$RABBITMQ_NODENAME
if [ "$ordinal" = 0 ] && [ -z "$(ls -A "$node_dir" 2>/dev/null)" ]; then
  for peer_ordinal in $(seq 1 {replicas - 1}); do
    peer=rabbit@{statefulset}-$peer_ordinal.{headless_service}.{namespace}
    if timeout 20 rabbitmq-diagnostics -q --longnames -n "$peer" check_running >/dev/null 2>&1
    then
      echo "blank seed pod: joining the running cluster through $peer" >&2
      echo "cluster_formation.k8s.seed_node = $peer" > "$confd/90-seed-node.conf"
      break
    fi
  done
fi
"""
    script += "exec rabbitmq-server\n"
    return script


def cluster_members_expression(version: RabbitMQVersion) -> str:
    """Erlang expression (for `rabbitmqctl eval`) listing the cluster's member nodes."""
    if version.at_least(3, 13):
        return "rabbit_nodes:list_members()."
    return "rabbit_mnesia:cluster_nodes(all)."


def startup_check_script(*, version: RabbitMQVersion, expected_members: int) -> str:
    """Exit 0 only when the node runs AND belongs to a cluster of the planned size.

    A node that formed a one-node cluster of its own (the lost-volume failure) never passes, so
    it never becomes Ready and never receives client traffic.
    """
    check_supported(version)
    if expected_members < 1:
        raise ValueError(f"expected_members: {expected_members} — use 1 or more")
    expression = cluster_members_expression(version)
    return (
        "set -eu\n"
        "rabbitmq-diagnostics -q check_running\n"
        f"members=$(rabbitmqctl -q eval {shlex.quote('length(' + expression[:-1] + ').')})\n"
        f'[ "$members" -ge {expected_members} ] || '
        f'{{ echo "cluster has $members members, expected {expected_members}" >&2; exit 1; }}\n'
    )


def prestop_script(*, quorum_wait_seconds: int, drain_timeout_seconds: int) -> str:
    """Before SIGTERM: wait until stopping this node leaves every quorum queue a majority, drain.

    Both waits are bounded (unlike the 7-day waits that leave pods stuck terminating): a whole-
    cluster shutdown can never satisfy quorum+1, and the grace period must end.
    """
    if quorum_wait_seconds < 0 or drain_timeout_seconds < 1:
        raise ValueError("quorum_wait_seconds must be >= 0 and drain_timeout_seconds >= 1")
    return (
        f"rabbitmq-upgrade await_online_quorum_plus_one -t {quorum_wait_seconds} || "
        'echo "quorum+1 not reached; draining anyway" >&2\n'
        f"rabbitmq-upgrade drain -t {drain_timeout_seconds} || true\n"
    )
