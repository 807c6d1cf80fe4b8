"""The NetworkPolicy and PodDisruptionBudget every app-image workload gets: egress only to DNS and
the platform's own pods (broker, database), ingress only where a workload lists it, and a budget
that lets one pod go at a time.

Pure builders; each workload's module decides its labels, selector and ingress rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from infra import names
from infra.app_pod import object_meta


def dns_egress_rule() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    # Name resolution of the broker/database Services; kube-dns (or NodeLocal DNSCache) lives
    # outside the namespace, so port 53 is open to any destination.
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        ports=[
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="UDP", port=53),
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=53),
        ]
    )


def platform_egress_rule() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    # Broker and database are pods of the platform in the same namespace; nothing else is needed.
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=names.platform_pod_selector()
                )
            )
        ]
    )


def network_policy_args(
    name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    pod_selector: Mapping[str, str],
    *,
    ingress: Sequence[k8s.networking.v1.NetworkPolicyIngressRuleArgs] = (),
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Both directions listed in policyTypes: no ingress rule means no ingress at all."""
    return k8s.networking.v1.NetworkPolicyInitArgs(
        metadata=object_meta(name, namespace, labels),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_selector)),
            policy_types=["Ingress", "Egress"],
            ingress=list(ingress),
            egress=[dns_egress_rule(), platform_egress_rule()],
        ),
    )


def pod_disruption_budget_args(
    name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    *,
    max_unavailable: int = 1,
) -> k8s.policy.v1.PodDisruptionBudgetInitArgs:
    return k8s.policy.v1.PodDisruptionBudgetInitArgs(
        metadata=object_meta(name, namespace, labels),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            # maxUnavailable (not minAvailable) so a pool scaled to zero never blocks node drains.
            max_unavailable=max_unavailable,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
            # A pod stuck unhealthy (e.g. crash-looping) may be evicted even when the budget is
            # spent, so it can't wedge a node upgrade.
            unhealthy_pod_eviction_policy="AlwaysAllow",
        ),
    )
