"""KEDA, installed by the program when a stack scales workers on queue depth.

Owns KEDA's namespace (Pod Security `restricted` enforced) and a `helm.v3.Release` of the pinned
kedacore/keda chart with hardened values: restricted security contexts on the operator, metrics
server and admission webhooks, resource requests and memory limits, and no service-account token
where none is needed. The worker pools' ScaledObjects depend on the release (its CRDs).

Does not own ScaledObjects or TriggerAuthentications (each `WorkerPool` creates its own), does
not open the RabbitMQ management port to KEDA (the RabbitMQ component's NetworkPolicy admits
KEDA's namespace on 15672), and does not open the cloud firewall for the control plane: the
cluster does, for `CONTROL_PLANE_PORTS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import names
from infra.resource_options import child_options
from infra.validation import check

CHART = "keda"
CHART_REPOSITORY = "https://kedacore.github.io/charts"
CHART_VERSION = "2.17.2"
"""Pinned: a chart upgrade changes CRDs and the metrics APIService, so it is a reviewed change."""

KEDA_COMPONENTS = ("operator", "metricServer", "webhooks")

WEBHOOK_PORT = 9443
"""The admission webhook's container port (chart value ``webhooks.port``, default 9443)."""
METRICS_SERVER_PORT = 6443
"""The metrics API server's container port (chart value ``service.portHttpsTarget``)."""
CONTROL_PLANE_PORTS = (METRICS_SERVER_PORT, WEBHOOK_PORT)
"""Ports the Kubernetes control plane calls on KEDA's pods. A private GKE cluster needs a
firewall rule for them (``GkeClusterArgs.control_plane_ingress_ports``): its own rule opens only
443 and 10250, and with ``failurePolicy: Fail`` every ScaledObject write would time out."""

_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class KedaArgs:
    """Inputs for Keda. Everything has a default; a stack only switches it on."""

    namespace: str = "keda"
    """KEDA's own namespace (created here, not shared with the workload)."""
    chart_version: str = CHART_VERSION
    watch_namespace: str | None = None
    """Only watch this namespace's ScaledObjects (the platform's); None watches all."""
    operator_replicas: int = 1
    """KEDA elects one active operator; 2 only shortens failover (and costs a pod)."""
    operator_memory_limit: str = "512Mi"

    def __post_init__(self) -> None:
        check(
            bool(_DNS_LABEL.match(self.namespace or "")),
            "KedaArgs.namespace",
            self.namespace,
            "a DNS label (lowercase letters, digits, '-')",
        )
        check(
            bool(_VERSION.match(self.chart_version or "")),
            "KedaArgs.chart_version",
            self.chart_version,
            "an exact chart version X.Y.Z (no ranges: pin it)",
        )
        check(
            self.watch_namespace is None or bool(_DNS_LABEL.match(self.watch_namespace)),
            "KedaArgs.watch_namespace",
            self.watch_namespace,
            "None or a namespace name",
        )
        check(
            1 <= self.operator_replicas <= 3,
            "KedaArgs.operator_replicas",
            self.operator_replicas,
            "1..3",
        )


def _restricted_container() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _restricted_pod() -> dict:
    return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def chart_values(args: KedaArgs) -> dict:
    """Pure: Helm values for the kedacore/keda chart (its values.yaml layout since 2.10)."""
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    return {
        "crds": {"install": True},
        "watchNamespace": args.watch_namespace or "",
        "operator": {"replicaCount": args.operator_replicas},
        # The chart's defaults set only runAsNonRoot at pod level; restricted also needs seccomp
        # on the pod and every container, or the namespace's admission rejects the pods.
        "podSecurityContext": {component: _restricted_pod() for component in KEDA_COMPONENTS},
        "securityContext": {component: _restricted_container() for component in KEDA_COMPONENTS},
        # The chart's default limits are 1 CPU / 1000Mi per pod; these fit a small platform and
        # leave CPU unlimited (throttling the metrics server delays every scaling decision).
        "resources": {
            "operator": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"memory": args.operator_memory_limit},
            },
            "metricServer": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"memory": "512Mi"},
            },
            "webhooks": small,
        },
        # Reject a malformed ScaledObject at `pulumi up` instead of failing silently later.
        # The ports are pinned (they are the chart's defaults) because the cluster's firewall
        # rule for the control plane names them (CONTROL_PLANE_PORTS).
        "webhooks": {"enabled": True, "failurePolicy": "Fail", "port": WEBHOOK_PORT},
        "service": {"portHttpsTarget": METRICS_SERVER_PORT},
        "podDisruptionBudget": {
            "operator": {"maxUnavailable": 1},
            "metricServer": {"maxUnavailable": 1},
            "webhooks": {"maxUnavailable": 1},
        },
        "logging": {"operator": {"format": "json"}, "webhooks": {"format": "json"}},
    }


def namespace_args(args: KedaArgs) -> k8s.core.v1.NamespaceInitArgs:
    return k8s.core.v1.NamespaceInitArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=args.namespace,
            labels={
                **names.labels("keda", args.namespace, component="autoscaler"),
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        )
    )


def release_args(args: KedaArgs, namespace: pulumi.Input[str]) -> k8s.helm.v3.ReleaseArgs:
    """Pure: the Helm release of the pinned chart."""
    return k8s.helm.v3.ReleaseArgs(
        name="keda",
        chart=CHART,
        version=args.chart_version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
        namespace=namespace,
        values=chart_values(args),
        # A failed install or upgrade rolls back instead of leaving half a KEDA behind.
        atomic=True,
        cleanup_on_fail=True,
        timeout=600,
        max_history=5,
    )


class Keda(pulumi.ComponentResource):
    """KEDA (operator, metrics API server, admission webhooks) in its own namespace."""

    namespace: pulumi.Output[str]
    release: k8s.helm.v3.Release
    """Depend on this before creating ScaledObjects or TriggerAuthentications."""

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hacelery:keda:Keda", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", namespace_args(args), opts=child_options(self, opts)
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            release_args(args, namespace.metadata.name),
            opts=child_options(self, opts),
        )
        self.namespace = namespace.metadata.name
        self.register_outputs({"namespace": self.namespace, "release_status": self.release.status})
