"""The platform's RabbitMQ: a highly-available cluster that loses no confirmed message.

Owns `RabbitMQCluster` (type ``hacelery:rabbitmq:RabbitMQCluster``) and one small pure builder per
Kubernetes object: generated secrets (Erlang cookie, admin and application users), the config
ConfigMap and Secret, headless + client Services, the StatefulSet (Parallel start, required
anti-affinity, zone spread, PVCs, memory request = limit, a startup check that proves the node
joined the cluster, a preStop that waits for quorum+1 and drains, restricted security), the
PodDisruptionBudget, the NetworkPolicy and the RBAC peer discovery uses.

Encrypted in transit (given the stack's certificate authority): one certificate naming every
pod and the client Service, in the ``<name>-tls`` Secret, its digest on the pod template (a
renewal rolls the nodes one at a time, each draining first); clients on AMQPS (5671) and
management/metrics over HTTPS (15671/15691), Erlang distribution and the CLI tools over mutual
TLS; the plain listeners only on the pod's loopback. The port map is in ``args``.

What survives what (3 replicas): one node lost (crash, drain, zone outage) -> every quorum queue
keeps a majority and keeps accepting and confirming; two lost -> publishing is refused (never
silently accepted), nothing confirmed is lost, service resumes when a node returns. A pod 0 that
comes back with an empty volume joins the running cluster instead of forming its own (see
`infra.rabbitmq_config.entrypoint_script`), and a node that is not in the planned cluster never
becomes Ready.

The package, one concept per module: `args` (inputs, constants, object names and labels),
`files` (runtime files, their checksum and the connection URLs), `network` (Services and the
NetworkPolicy), `statefulset` (the pods, their volumes, placement, disruption budget and peer
discovery RBAC) and `component` (the ComponentResource wiring them). Everything public is
re-exported here, so ``from infra.rabbitmq import RabbitMQCluster`` keeps working.

Does not read stack config (everything arrives in `RabbitMQClusterArgs`), does not expose
anything outside the cluster (management and metrics are reached with `kubectl port-forward`),
does not create namespaces, and does not generate the runtime files (that is
`infra/rabbitmq_config/`, shared with the local drill).
"""

from infra.quantities import quantity_bytes
from infra.rabbitmq.args import (
    ADMIN_PASSWORD_KEY,
    ADMIN_USERNAME_KEY,
    AMQP_PORT,
    AMQPS_PORT,
    APP_NAME,
    BROKER_URL_KEY,
    CLI_PORT_RANGE,
    DEFAULT_IMAGE,
    DISTRIBUTION_PORT,
    EPMD_PORT,
    MANAGEMENT_PORT,
    MANAGEMENT_TLS_PORT,
    PROMETHEUS_PORT,
    PROMETHEUS_TLS_PORT,
    QUEUE_MONITOR_CA_KEY,
    QUEUE_MONITOR_TLS_KEY,
    QUEUE_MONITOR_URL_KEY,
    RABBITMQ_UID,
    ClientPorts,
    ObjectNames,
    RabbitMQClusterArgs,
    metadata,
    object_labels,
    selector,
)
from infra.rabbitmq.component import RabbitMQCluster
from infra.rabbitmq.files import (
    broker_settings,
    broker_url,
    broker_url_checksum,
    broker_urls,
    config_checksum,
    config_map_data,
    queue_monitor_url,
    runtime_checksum,
    server_secret_data,
)
from infra.rabbitmq.network import (
    amqp_peer,
    client_service_args,
    headless_service_args,
    network_policy_spec,
    rabbitmq_egress,
)
from infra.rabbitmq.statefulset import (
    affinity,
    container,
    pod_disruption_budget_spec,
    role_rules,
    statefulset_spec,
    topology_spread,
    volume_claim_template,
    volumes,
)

__all__ = [
    "ADMIN_PASSWORD_KEY",
    "ADMIN_USERNAME_KEY",
    "AMQPS_PORT",
    "AMQP_PORT",
    "APP_NAME",
    "BROKER_URL_KEY",
    "CLI_PORT_RANGE",
    "DEFAULT_IMAGE",
    "DISTRIBUTION_PORT",
    "EPMD_PORT",
    "MANAGEMENT_PORT",
    "MANAGEMENT_TLS_PORT",
    "PROMETHEUS_PORT",
    "PROMETHEUS_TLS_PORT",
    "QUEUE_MONITOR_CA_KEY",
    "QUEUE_MONITOR_TLS_KEY",
    "QUEUE_MONITOR_URL_KEY",
    "RABBITMQ_UID",
    "ClientPorts",
    "ObjectNames",
    "RabbitMQCluster",
    "RabbitMQClusterArgs",
    "affinity",
    "amqp_peer",
    "broker_settings",
    "broker_url",
    "broker_url_checksum",
    "broker_urls",
    "client_service_args",
    "config_checksum",
    "config_map_data",
    "container",
    "headless_service_args",
    "metadata",
    "network_policy_spec",
    "object_labels",
    "pod_disruption_budget_spec",
    "quantity_bytes",
    "queue_monitor_url",
    "rabbitmq_egress",
    "role_rules",
    "runtime_checksum",
    "selector",
    "server_secret_data",
    "statefulset_spec",
    "topology_spread",
    "volume_claim_template",
    "volumes",
]
