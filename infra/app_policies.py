"""The NetworkPolicy and PodDisruptionBudget every app-image workload gets: egress only to
kube-dns and the peers it uses (the broker's AMQP port, the database's port, configured external
blocks), ingress only where a workload lists it, and a budget that lets one pod go at a time.

Pure builders; each workload's module decides its labels, selector and peers (in one place per
workload, see ``infra/network_policy.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from infra.app_pod import AppRuntimeArgs, object_meta
from infra.network_policy import KUBE_DNS, Peer
from infra.network_policy import network_policy_args as policy_args


def runtime_egress(runtime: AppRuntimeArgs, *, database: bool = True) -> tuple[Peer, ...]:
    """What an app pod may send to: kube-dns, the broker (AMQP) and, unless ``database`` is
    False, the database. The broker and database peers are wired by the platform; a runtime
    without them (a component under test) may reach DNS only."""
    peers = [KUBE_DNS]
    if runtime.broker_peer is not None:
        peers.append(runtime.broker_peer)
    if database and runtime.database_peer is not None:
        peers.append(runtime.database_peer)
    return tuple(peers)


def network_policy_args(
    name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    pod_selector: Mapping[str, str],
    *,
    egress: Sequence[Peer],
    ingress: Sequence[Peer] = (),
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Both directions listed in policyTypes: no ingress peer means no ingress at all, and the
    pod may send only to ``egress``."""
    return policy_args(name, namespace, labels, pod_selector, ingress=ingress, egress=egress)


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
