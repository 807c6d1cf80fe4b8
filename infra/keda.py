"""KEDA, installed by the program when a stack scales workers on queue depth.

Owns KEDA's namespace (Pod Security `restricted` enforced) and a `helm.v3.Release` of the pinned
kedacore/keda chart with hardened values: restricted security contexts on the operator, metrics
server and admission webhooks, resource requests and memory limits without a CPU limit, Secret
access restricted to KEDA's own namespace (``permissions.*.restrict.secret``: the operator may
read its certificates and the queue-monitor credentials placed there, nothing in the platform's
namespace), two admission-webhook replicas on different nodes, and a NetworkPolicy per KEDA pod
(``keda_ingress`` / ``keda_egress``: the control plane in, the API server, kube-dns and the
RabbitMQ management API out). The worker pools' ScaledObjects depend on the release (its CRDs).

Does not own ScaledObjects or ClusterTriggerAuthentications (each `WorkerPool` creates its own),
the queue-monitor Secret (the RabbitMQ component creates it in KEDA's namespace), does not open
the RabbitMQ management port to KEDA (the RabbitMQ component's NetworkPolicy admits KEDA's
namespace on 15672), and does not open the cloud firewall for the control plane: the cluster
does, for `CONTROL_PLANE_PORTS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import names
from infra.namespace import default_deny_args
from infra.network_policy import (
    KUBE_DNS,
    MetricsScraper,
    Peer,
    kubernetes_api,
    network_policy_args,
    tcp,
)
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
    control_plane_cidrs: tuple[str, ...] = ()
    """Where the Kubernetes API server is and calls the webhook and metrics server from: the GKE
    control plane's range (wired by the platform); empty: any address (other clusters)."""
    queue_monitor: Peer | None = None
    """The RabbitMQ management API the operator reads queue depth from (wired)."""
    metrics_scraper: MetricsScraper | None = None
    """Who scrapes the operator's metrics (wired by the platform): the chart then serves them
    on port 8080, and only the scraper may reach it. None: no metrics listener."""
    webhook_replicas: int = 2
    """Admission webhook pods, on different nodes. The webhook validates every ScaledObject and
    TriggerAuthentication of the cluster with ``failurePolicy: Fail``: with one pod, a node
    drain or a crash-looping pod refuses every such write in every namespace until it is back."""

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
        check(
            2 <= self.webhook_replicas <= 5,
            "KedaArgs.webhook_replicas",
            self.webhook_replicas,
            "2..5 (one replica blocks every ScaledObject write while it is down)",
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


WEBHOOK_APP_LABEL = "keda-admission-webhooks"
"""The ``app`` label the chart puts on the webhook pods (``webhooks.name``)."""
OPERATOR_APP_LABEL = "keda-operator"
METRICS_SERVER_APP_LABEL = "keda-operator-metrics-apiserver"
OPERATOR_GRPC_PORT = 9666
OPERATOR_METRICS_PORT = 8080
"""The operator's Prometheus listener (chart value ``prometheus.operator.port``; its container
port is named ``http`` in templates/manager/deployment.yaml)."""
"""The operator's metrics service, which the metrics API server asks for every value."""
APP_LABELS = {"operator": OPERATOR_APP_LABEL, "metricServer": METRICS_SERVER_APP_LABEL,
              "webhooks": WEBHOOK_APP_LABEL}
"""The chart's ``app`` label of each component's pods (templates/*/deployment.yaml)."""


def keda_ingress(args: KedaArgs, component: str) -> tuple[Peer, ...]:
    """Who may connect to each KEDA pod: the control plane to the webhook and the metrics API
    server (admission calls, external metrics for the HPA controller), the metrics server to the
    operator. Kubelet probes are not subject to NetworkPolicy on GKE Dataplane V2."""
    control_plane = tuple(args.control_plane_cidrs) or ("0.0.0.0/0",)
    if component == "webhooks":
        return (Peer(purpose="admission calls from the API server", cidrs=control_plane,
                     ports=(tcp(WEBHOOK_PORT),)),)
    if component == "metricServer":
        return (Peer(purpose="external metrics for the API server", cidrs=control_plane,
                     ports=(tcp(METRICS_SERVER_PORT),)),)
    scraper = ((args.metrics_scraper.peer(OPERATOR_METRICS_PORT),)
               if args.metrics_scraper is not None else ())
    return (Peer(purpose="the metrics API server asking for values",
                 pod_labels={"app": METRICS_SERVER_APP_LABEL},
                 ports=(tcp(OPERATOR_GRPC_PORT),)), *scraper)


def keda_egress(args: KedaArgs, component: str) -> tuple[Peer, ...]:
    """Where each KEDA pod may send: kube-dns and the API server; the operator also the RabbitMQ
    management API (queue depth) and the metrics server the operator."""
    peers = [KUBE_DNS, kubernetes_api(args.control_plane_cidrs)]
    if component == "operator" and args.queue_monitor is not None:
        peers.append(args.queue_monitor)
    if component == "metricServer":
        peers.append(Peer(purpose="the operator's metrics service",
                          pod_labels={"app": OPERATOR_APP_LABEL},
                          ports=(tcp(OPERATOR_GRPC_PORT),)))
    return tuple(peers)


def _spread(app_label: str, topology_key: str, when_unsatisfiable: str) -> dict:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": when_unsatisfiable,
        "labelSelector": {"matchLabels": {"app": app_label}},
    }


def chart_values(args: KedaArgs) -> dict:
    """Pure: Helm values for the kedacore/keda chart (its values.yaml layout since 2.10).

    Helm merges these over the chart's own values.yaml, so a default can only be removed with an
    explicit null: those live in ``chart_value_deletions`` (a values file, see there)."""
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    return {
        "crds": {"install": True},
        "watchNamespace": args.watch_namespace or "",
        "operator": {"replicaCount": args.operator_replicas},
        # The chart sets seccomp per container and only runAsNonRoot per pod; seccomp and
        # non-root on the pod as well cover any container a later chart adds (restricted wants
        # them on the pod or on every container).
        "podSecurityContext": {component: _restricted_pod() for component in KEDA_COMPONENTS},
        "securityContext": {component: _restricted_container() for component in KEDA_COMPONENTS},
        # The chart's default limits are 1 CPU / 1000Mi per pod; these fit a small platform. The
        # CPU limit is removed (chart_value_deletions): throttling the metrics server delays
        # every scaling decision, and requests already reserve what the pods need.
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
        # The chart's default (false) lets the operator list and watch every Secret of every
        # namespace it watches -- the platform's namespace holds the database superuser, the
        # Erlang cookie and the backup configuration. Restricted, KEDA reads Secrets only from
        # its own namespace (KEDA_RESTRICT_SECRET_ACCESS; pkg/scaling/resolver/
        # scale_resolvers.go resolveAuthSecret), through the chart's namespaced Role: there it
        # finds its certificates and the queue-monitor URL, which is all it needs.
        "permissions": {
            "operator": {"restrict": {"secret": True}},
            "metricServer": {"restrict": {"secret": True}},
        },
        # Reject a malformed ScaledObject at `pulumi up` instead of failing silently later
        # (failurePolicy Fail). The chart's webhook configuration matches every namespace (no
        # selector value exists), so availability comes from replicas: two pods on different
        # nodes (and zones when possible) with a disruption budget, so a drain or one crashed
        # pod never blocks ScaledObject writes cluster-wide. The ports are pinned (they are the
        # chart's defaults) because the cluster's firewall rule for the control plane names them
        # (CONTROL_PLANE_PORTS).
        "webhooks": {
            "enabled": True,
            "failurePolicy": "Fail",
            "port": WEBHOOK_PORT,
            "replicaCount": args.webhook_replicas,
        },
        "topologySpreadConstraints": {
            "webhooks": [
                _spread(WEBHOOK_APP_LABEL, "kubernetes.io/hostname", "DoNotSchedule"),
                _spread(WEBHOOK_APP_LABEL, "topology.kubernetes.io/zone", "ScheduleAnyway"),
            ],
        },
        "service": {"portHttpsTarget": METRICS_SERVER_PORT},
        "podDisruptionBudget": {
            "operator": {"maxUnavailable": 1},
            "metricServer": {"maxUnavailable": 1},
            "webhooks": {"maxUnavailable": 1},
        },
        "logging": {"operator": {"format": "json"}, "webhooks": {"format": "json"}},
        # Scaler values and errors for the dashboard and the alerts; the listener only exists
        # when something scrapes it.
        "prometheus": {"operator": {"enabled": args.metrics_scraper is not None,
                                    "port": OPERATOR_METRICS_PORT}},
    }


def chart_value_deletions() -> dict:
    """Pure: chart defaults removed with an explicit null (Helm: "Deleting a default key").

    Passed as a values FILE, not in ``values``: pulumi-kubernetes drops a null from the
    ``values`` input before Helm sees it (pulumi/pulumi-kubernetes#3811, #2034), while a YAML
    file's null reaches Helm's coalescing intact (provider/pkg/provider/helm_release.go
    decodeRelease merges the files with helm.MergeMaps, which keeps it)."""
    return {"resources": {component: {"limits": {"cpu": None}}
                          for component in KEDA_COMPONENTS}}


def chart_value_deletions_yaml() -> str:
    return yaml.safe_dump(chart_value_deletions(), sort_keys=True)


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
        # Applied first; ``values`` are merged over it and never set these keys again.
        value_yaml_files=[pulumi.StringAsset(chart_value_deletions_yaml())],
        # A failed install or upgrade rolls back instead of leaving half a KEDA behind.
        atomic=True,
        cleanup_on_fail=True,
        timeout=600,
        max_history=5,
    )


class Keda(pulumi.ComponentResource):
    """KEDA (operator, metrics API server, admission webhooks) in its own namespace."""

    namespace: pulumi.Output[str]
    namespace_resource: k8s.core.v1.Namespace
    """Depend on this before creating objects in KEDA's namespace (the queue-monitor Secret)."""
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
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny", default_deny_args(args.namespace),
            opts=child_options(self, opts, depends_on=[namespace]))
        for component, app_label in APP_LABELS.items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{app_label}-network-policy",
                network_policy_args(
                    app_label, namespace.metadata.name,
                    names.labels("keda", app_label, component="autoscaler"),
                    {"app": app_label},
                    ingress=keda_ingress(args, component),
                    egress=keda_egress(args, component)),
                opts=child_options(self, opts, depends_on=[namespace]))
        self.namespace_resource = namespace
        self.namespace = namespace.metadata.name
        self.register_outputs({"namespace": self.namespace, "release_status": self.release.status})
