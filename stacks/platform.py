"""Composes one stack's platform from its validated config and exports what users need.

Owns the wiring between components (which output feeds which input) and the Kubernetes provider:
built from the GKE kubeconfig on GCP stacks, from the current kubeconfig context on `local`.
Does not read config (``stacks/config.py`` does) and holds no resource settings of its own.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.dns import PublicDns
from infra.gke import GkeCluster
from infra.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import StackConfig


def kubernetes_provider(config: StackConfig, gke: GkeCluster | None) -> k8s.Provider:
    """The provider every Kubernetes object of the stack is created with."""
    if gke is not None:
        return k8s.Provider(
            "kubernetes",
            kubeconfig=gke.kubeconfig,
            # Server-side apply reports field conflicts instead of silently overwriting edits
            # made by controllers (HPA/KEDA replica counts, for instance).
            enable_server_side_apply=True,
        )
    # local: no kubeconfig passed, so the provider uses ~/.kube/config (or $KUBECONFIG) and the
    # named context, or the current one.
    return k8s.Provider("kubernetes", context=config.kube_context, enable_server_side_apply=True)


def build(config: StackConfig) -> dict[str, pulumi.Output]:
    """Create every resource of the stack; returns the stack outputs (also exported)."""
    outputs: dict[str, pulumi.Output] = {}
    gke = dns = None
    if config.on_gcp:
        assert config.gke is not None
        gke = GkeCluster("gke", config.gke)
        outputs["cluster_name"] = gke.cluster_name
        outputs["kubeconfig"] = gke.kubeconfig
        if config.dns is not None:
            dns = PublicDns("dns", config.dns)
            outputs["address"] = dns.address
            outputs["name_servers"] = dns.name_servers
            outputs["ds_record"] = dns.ds_record

    provider = kubernetes_provider(config, gke)
    k8s_opts = pulumi.ResourceOptions(provider=provider)
    namespace = PlatformNamespace(
        "platform", PlatformNamespaceArgs(name=config.namespace), opts=k8s_opts)
    outputs["namespace"] = namespace.name

    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
