"""RabbitMQ on the network: the headless Service (stable per-pod DNS names for peer discovery
and the failover list), the ClusterIP client Service, the NetworkPolicy (ingress from the
platform's pods and the management clients, egress to its peers, kube-dns and the Kubernetes
API only) and ``amqp_peer``, the peer app pods' policies allow egress to.

Pure builders; exposes nothing outside the cluster (management and metrics are reached with
`kubectl port-forward`).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra import names as labels_module
from infra.network_policy import KUBE_DNS, Peer, kubernetes_api, tcp
from infra.rabbitmq.args import (
    AMQP_PORT,
    AMQPS_PORT,
    CLI_PORT_RANGE,
    DISTRIBUTION_PORT,
    EPMD_PORT,
    MANAGEMENT_PORT,
    MANAGEMENT_TLS_PORT,
    PROMETHEUS_PORT,
    PROMETHEUS_TLS_PORT,
    ObjectNames,
    RabbitMQClusterArgs,
    metadata,
    selector,
)


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
                _port(*_amqp(args)),
            ],
        ),
    )


def _amqp(args: RabbitMQClusterArgs) -> tuple[str, int]:
    return ("amqps", AMQPS_PORT) if args.server_tls else ("amqp", AMQP_PORT)


def _management(args: RabbitMQClusterArgs) -> tuple[str, int]:
    # The name stays with the role (the scheme is https with TLS): selectors by name keep working.
    return ("management", MANAGEMENT_TLS_PORT if args.server_tls else MANAGEMENT_PORT)


def _prometheus(args: RabbitMQClusterArgs) -> tuple[str, int]:
    # Scrapers select the metrics port by this name (infra/observability/sources.py); with TLS it
    # serves https on PROMETHEUS_TLS_PORT and the scraper must use scheme https.
    return ("prometheus", PROMETHEUS_TLS_PORT if args.server_tls else PROMETHEUS_PORT)


def client_port_names(args: RabbitMQClusterArgs) -> tuple[tuple[str, int], ...]:
    """(name, port) of what the pod network may reach: the container and Services use these
    names; with TLS on only the TLS ports exist on the pod network."""
    return (_amqp(args), _management(args), _prometheus(args))


def client_service_args(names: ObjectNames, args: RabbitMQClusterArgs) -> dict:
    return dict(
        metadata=metadata(names.client_service, names, args),
        spec=k8s.core.v1.ServiceSpecArgs(
            # ClusterIP only: management and metrics are reached by port-forward, never publicly.
            type="ClusterIP",
            selector=selector(names),
            ports=[_port(name, port) for name, port in client_port_names(args)],
        ),
    )


def amqp_peer(names: ObjectNames, args: RabbitMQClusterArgs | None = None) -> Peer:
    """The brokers' AMQP(S) port, as a destination of app pods' egress."""
    port = args.client_ports.amqp if args is not None else AMQP_PORT
    return Peer(purpose="the broker (AMQP)", pod_labels=selector(names), ports=(tcp(port),))


def rabbitmq_egress(names: ObjectNames, args: RabbitMQClusterArgs) -> tuple[Peer, ...]:
    """What a broker node may send to: its peers (Erlang distribution, epmd, CLI tools),
    kube-dns (peer host names) and the Kubernetes API (peer discovery). Nothing else: no node
    ever calls out of the cluster, and replies to clients need no rule."""
    return (
        Peer(purpose="the other RabbitMQ nodes", pod_labels=selector(names),
             ports=(tcp(EPMD_PORT), tcp(DISTRIBUTION_PORT), tcp(*CLI_PORT_RANGE))),
        KUBE_DNS,
        kubernetes_api(args.kubernetes_api_cidrs),
    )


def network_policy_spec(names: ObjectNames,
                        args: RabbitMQClusterArgs) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Ingress and egress allow-lists; anything not listed (including from outside the cluster)
    is dropped."""
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
        policy_types=["Ingress", "Egress"],
        egress=[peer.egress_rule() for peer in rabbitmq_egress(names, args)],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[platform_pods], ports=[tcp(args.client_ports.amqp)]
            ),
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[rabbitmq_pods],
                ports=[tcp(EPMD_PORT), tcp(DISTRIBUTION_PORT), tcp(*CLI_PORT_RANGE)],
            ),
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=management_peers,
                ports=[tcp(args.client_ports.management), tcp(args.client_ports.prometheus)]
            ),
            # The metrics scraper: the client-facing Prometheus port only (https 15691 with TLS;
            # plain 15692 is then on the pod's loopback), never AMQP or management.
            *([args.metrics_scraper.peer(args.client_ports.prometheus).ingress_rule()]
              if args.metrics_scraper is not None else []),
        ],
    )
