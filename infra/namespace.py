"""The platform's namespace, with the Pod Security Standard `restricted` enforced.

Owns the Namespace object and its Pod Security Admission labels. Enforcing (not just warning)
means a pod that asks for root, privilege escalation or extra capabilities is rejected by the API
server, whoever creates it. Does not own NetworkPolicies: each component admits its own traffic.
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

    def __post_init__(self) -> None:
        check(bool(re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", self.name)),
              "PlatformNamespaceArgs.name", self.name, "a DNS label")


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


class PlatformNamespace(pulumi.ComponentResource):
    """The namespace every platform workload runs in."""

    name: pulumi.Output[str]
    """The namespace's name (depend on this output to order creation)."""

    def __init__(self, name: str, args: PlatformNamespaceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:namespace:PlatformNamespace", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=namespace_metadata(args),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self.name = namespace.metadata.name
        self.register_outputs({"name": self.name})
