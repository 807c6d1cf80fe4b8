"""RabbitMQ on the network: the headless Service (stable per-pod DNS names for peer discovery
and the failover list), the ClusterIP client Service and the ingress NetworkPolicy.

Pure builders; exposes nothing outside the cluster (management and metrics are reached with
`kubectl port-forward`).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra import names as labels_module
from infra.rabbitmq.args import (
    AMQP_PORT,
    CLI_PORT_RANGE,
    DISTRIBUTION_PORT,
    EPMD_PORT,
    MANAGEMENT_PORT,
    PROMETHEUS_PORT,
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
