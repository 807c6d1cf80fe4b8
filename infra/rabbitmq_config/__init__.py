"""Every runtime file a RabbitMQ node of the platform reads, as pure functions of typed settings.

Owns: `rabbitmq.conf` (one file for every supported version, keys gated by version),
`enabled_plugins`, the definitions document (vhost with quorum as its default queue type, the
admin and application users, permissions, the poison-message policy and its dead-letter target),
the secret `conf.d` snippet holding the default (admin) user, and the shell scripts the container
runs (entrypoint, startup check, preStop). The Kubernetes component (`infra/rabbitmq.py`) and
the local cluster drill (`drills/rabbitmq_cluster.py`) both call these functions, so the drill
boots nodes from the files that will be deployed; only ports, node names, paths and the peer
discovery backend differ on one machine.

The package, one concept per module: `versions` (releases and version gates), `settings` (the
typed inputs), `conf` (rabbitmq.conf, enabled_plugins, the default-user snippet), `tls` (AMQPS,
management HTTPS, the inter-node TLS option file and env file), `definitions` (users, vhost,
policy) and `scripts` (entrypoint, startup check, preStop). Everything is re-exported here, so
``from infra import rabbitmq_config as config; config.rabbitmq_conf(...)`` keeps working.

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

from infra.rabbitmq_config.conf import (
    default_user_conf,
    enabled_plugins,
    rabbitmq_conf,
)
from infra.rabbitmq_config.definitions import (
    ADMIN_TAGS,
    MONITOR_TAGS,
    POISON_POLICY_NAME,
    PoisonMessagePolicy,
    definitions,
    definitions_json,
    password_hash,
    stable_salt,
)
from infra.rabbitmq_config.scripts import (
    ContainerPaths,
    cluster_members_expression,
    entrypoint_script,
    prestop_script,
    startup_check_script,
)
from infra.rabbitmq_config.settings import (
    PARTITION_HANDLING_MODES,
    BrokerSettings,
    ClassicConfigPeerDiscovery,
    KubernetesPeerDiscovery,
    Listeners,
)
from infra.rabbitmq_config.tls import (
    AMQPS_PORT,
    CIPHERS,
    LOOPBACK,
    MANAGEMENT_TLS_PORT,
    PROMETHEUS_TLS_PORT,
    TLS12_CIPHERS,
    TLS13_CIPHERS,
    TLS_VERSIONS,
    BrokerTls,
    amqp_listener_lines,
    distribution_erl_args,
    http_listener_lines,
    inter_node_tls_config,
    rabbitmq_env_conf,
    tls_conf_lines,
)
from infra.rabbitmq_config.versions import (
    NEWEST_SUPPORTED_MAJOR,
    OLDEST_SUPPORTED,
    RabbitMQVersion,
    check_supported,
    has_anonymous_login,
    has_membership_reconciliation,
    has_node_wide_default_queue_type,
    has_partition_handling,
    uses_seed_node_discovery,
)

__all__ = [
    "ADMIN_TAGS",
    "AMQPS_PORT",
    "CIPHERS",
    "LOOPBACK",
    "MANAGEMENT_TLS_PORT",
    "MONITOR_TAGS",
    "NEWEST_SUPPORTED_MAJOR",
    "OLDEST_SUPPORTED",
    "PARTITION_HANDLING_MODES",
    "POISON_POLICY_NAME",
    "PROMETHEUS_TLS_PORT",
    "TLS12_CIPHERS",
    "TLS13_CIPHERS",
    "TLS_VERSIONS",
    "BrokerSettings",
    "BrokerTls",
    "ClassicConfigPeerDiscovery",
    "ContainerPaths",
    "KubernetesPeerDiscovery",
    "Listeners",
    "PoisonMessagePolicy",
    "RabbitMQVersion",
    "amqp_listener_lines",
    "check_supported",
    "cluster_members_expression",
    "default_user_conf",
    "definitions",
    "definitions_json",
    "distribution_erl_args",
    "enabled_plugins",
    "entrypoint_script",
    "has_anonymous_login",
    "has_membership_reconciliation",
    "has_node_wide_default_queue_type",
    "has_partition_handling",
    "http_listener_lines",
    "inter_node_tls_config",
    "password_hash",
    "prestop_script",
    "rabbitmq_conf",
    "rabbitmq_env_conf",
    "stable_salt",
    "startup_check_script",
    "tls_conf_lines",
    "uses_seed_node_discovery",
]
