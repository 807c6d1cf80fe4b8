"""The platform's namespace, with the Pod Security Standard `restricted` enforced.

Owns the Namespace object and its Pod Security Admission labels. Enforcing (not just warning)
means a pod that asks for root, privilege escalation or extra capabilities is rejected by the API
server, whoever creates it. Also owns how long deleting it may take: the provider waits until the
namespace is gone, which is after every pod's grace period and after GKE's NEG controller has
deleted the load balancer's network endpoint groups (their custom resources in the namespace
carry a finalizer until then), so the cluster and its subnet are deleted only once nothing of the
Ingress is left. Also owns the namespace's default-deny NetworkPolicy (a pod no component
lists may send and receive nothing); each component admits its own traffic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import names
from infra.validation import check

POD_SECURITY_LEVEL = "restricted"


@dataclass(frozen=True, kw_only=True)
class PlatformNamespaceArgs:
    name: str = "ha-celery"
    protect: bool = True
    """True: Pulumi refuses to delete or replace the namespace (deleting it deletes everything in
    it, the volumes' claims included). The stack's `ha-celery:protect` sets it."""
    longest_termination_grace_seconds: int = 30
    """The longest grace period of any pod in the namespace (a worker finishing a long task)."""

    def __post_init__(self) -> None:
        check(bool(re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", self.name)),
              "PlatformNamespaceArgs.name", self.name, "a DNS label")
        check(0 <= self.longest_termination_grace_seconds <= 24 * 3600,
              "PlatformNamespaceArgs.longest_termination_grace_seconds",
              self.longest_termination_grace_seconds, "seconds in 0..86400")


def namespace_metadata(args: PlatformNamespaceArgs) -> k8s.meta.v1.ObjectMetaArgs:
    """Pure: the namespace's name and labels."""
    return k8s.meta.v1.ObjectMetaArgs(
        name=args.name,
        labels={
            **names.labels("ha-celery", args.name, component="namespace"),
            # enforce rejects violating pods; audit and warn make kubectl show why.
            "pod-security.kubernetes.io/enforce": POD_SECURITY_LEVEL,
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/audit": POD_SECURITY_LEVEL,
            "pod-security.kubernetes.io/warn": POD_SECURITY_LEVEL,
        },
    )


NEG_CLEANUP_SECONDS = 900
"""Room for GKE's NEG garbage collection after the Ingress and Service are gone: it runs
asynchronously, and namespaces holding NEG custom resources have taken more than 10 minutes to
delete (kubernetes/ingress-gce#1197 put the finalizer on them, #1720 reports the wait)."""


def delete_timeout(args: PlatformNamespaceArgs) -> str:
    """Pure: how long `pulumi destroy` waits for the namespace to be gone (the provider's default
    is 10 minutes, pulumi-kubernetes provider/pkg/await/await.go)."""
    seconds = args.longest_termination_grace_seconds + NEG_CLEANUP_SECONDS
    return f"{max(10, -(-seconds // 60))}m"


class PlatformNamespace(pulumi.ComponentResource):
    """The namespace every platform workload runs in."""

    name: pulumi.Output[str]
    """The namespace's name (depend on this output to order creation)."""

    def __init__(self, name: str, args: PlatformNamespaceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:namespace:PlatformNamespace", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=namespace_metadata(args),
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect,
                custom_timeouts=pulumi.CustomTimeouts(delete=delete_timeout(args))))
        # Every workload has a policy of its own listing what it may reach; this one catches
        # the rest (a `kubectl run` debugging pod, a future workload without one): no traffic in
        # or out. Policies add up, so the workloads' own allowances are unaffected.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            default_deny_args(args.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]))
        self.name = namespace.metadata.name
        self.register_outputs({"name": self.name})


def default_deny_args(namespace: pulumi.Input[str]) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Pure: selects every pod of the namespace and allows nothing."""
    return k8s.networking.v1.NetworkPolicyInitArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name="default-deny", namespace=namespace),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(),
            policy_types=["Ingress", "Egress"], ingress=[], egress=[]))
