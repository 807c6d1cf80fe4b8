"""Flower, Celery's monitoring UI, reachable by `kubectl port-forward` only.

Owns Flower's Deployment, a ClusterIP Service (a stable port-forward target) and a NetworkPolicy
that admits no ingress at all: Flower can revoke tasks and shut workers down, so nothing in or
outside the cluster may connect to it. `kubectl port-forward` still works, because it enters the
pod through the kubelet and the container runtime, not through the pod network.

Does not own an Ingress, a LoadBalancer or any login: access is whoever may port-forward in the
namespace (Kubernetes RBAC). Does not persist Flower's state (it rebuilds it from events).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import names
from infra.app_pod import (
    AppRuntimeArgs,
    ContainerResources,
    app_container,
    app_pod_spec,
    object_meta,
    pod_template_metadata,
    validate_object_name,
    workload_timeouts,
)
from infra.app_policies import network_policy_args, runtime_egress
from infra.network_policy import MetricsScraper
from infra.observability.sources import FLOWER_PURGE_OFFLINE_WORKERS_SECONDS
from infra.resource_options import child_options
from infra.validation import check

FLOWER_APP_NAME = "flower"
FLOWER_PORT = 5555


@dataclass(frozen=True, kw_only=True)
class FlowerArgs:
    """Inputs for Flower. Only ``runtime`` is required."""

    runtime: AppRuntimeArgs
    resources: ContainerResources = field(
        default_factory=lambda: ContainerResources(
            cpu_request="50m", memory_request="128Mi", memory_limit="512Mi"
        )
    )
    max_tasks: int = 10000
    """Tasks Flower keeps in memory; bounds its memory on a busy broker."""
    purge_offline_workers_seconds: int = FLOWER_PURGE_OFFLINE_WORKERS_SECONDS
    """A worker silent this long (no heartbeat) is dropped from Flower's view and its metrics,
    so a killed worker stops counting as online (Flower's default keeps it for ever, which
    would hide a dead pool from the no-live-worker alert)."""
    metrics_scraper: MetricsScraper | None = None
    """Who scrapes Flower's ``/metrics`` (wired by the platform). Flower serves them on its UI
    port, so the scraper is admitted to that port, and nothing else is."""

    def __post_init__(self) -> None:
        check(
            100 <= self.max_tasks <= 1_000_000,
            "FlowerArgs.max_tasks",
            self.max_tasks,
            "100..1000000",
        )
        check(
            isinstance(self.purge_offline_workers_seconds, int)
            and 10 <= self.purge_offline_workers_seconds <= 86400,
            "FlowerArgs.purge_offline_workers_seconds",
            self.purge_offline_workers_seconds,
            "10..86400 seconds (well above the workers' 2 s heartbeat)",
        )


def flower_labels(name: str) -> dict[str, str]:
    return names.labels(FLOWER_APP_NAME, name, component="monitoring")


def flower_selector(name: str) -> dict[str, str]:
    return names.selector_labels(FLOWER_APP_NAME, name)


def flower_command(args: FlowerArgs) -> list[str]:
    return [
        "celery",
        "--app",
        "app.celery_app",
        "flower",
        f"--port={FLOWER_PORT}",
        f"--max_tasks={args.max_tasks}",
        f"--purge_offline_workers={args.purge_offline_workers_seconds}",
    ]


def flower_deployment_args(name: str, args: FlowerArgs) -> k8s.apps.v1.DeploymentInitArgs:
    """Pure: one Flower replica (it holds its view in memory; two would disagree)."""
    labels = flower_labels(name)
    probe = k8s.core.v1.HTTPGetActionArgs(path="/healthcheck", port="http")
    container = app_container(
        name="flower",
        runtime=args.runtime,
        command=flower_command(args),
        resources=args.resources,
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=FLOWER_PORT)],
        readiness_probe=k8s.core.v1.ProbeArgs(http_get=probe, period_seconds=10),
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=probe, period_seconds=30, timeout_seconds=5, failure_threshold=3
        ),
    )
    return k8s.apps.v1.DeploymentInitArgs(
        metadata=object_meta(name, args.runtime.namespace, labels),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=flower_selector(name)),
            # Recreate: never two Flowers at once (see above).
            strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
            revision_history_limit=3,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=pod_template_metadata(labels, args.runtime),
                spec=app_pod_spec(runtime=args.runtime, containers=[container]),
            ),
        ),
    )


def flower_service_args(name: str, args: FlowerArgs) -> k8s.core.v1.ServiceInitArgs:
    """Pure: ClusterIP only, never a LoadBalancer or NodePort."""
    return k8s.core.v1.ServiceInitArgs(
        metadata=object_meta(name, args.runtime.namespace, flower_labels(name)),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=flower_selector(name),
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name="http", port=FLOWER_PORT, target_port="http", protocol="TCP"
                )
            ],
        ),
    )


def flower_network_policy_args(
    name: str, args: FlowerArgs
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Ingress from the metrics scraper only (port-forward does not pass through the pod
    network); egress to kube-dns and the broker only: Flower reads task events and inspects
    workers over AMQP and never needs the database."""
    return network_policy_args(
        name, args.runtime.namespace, flower_labels(name), flower_selector(name),
        ingress=(args.metrics_scraper.peer(FLOWER_PORT),) if args.metrics_scraper else (),
        egress=runtime_egress(args.runtime, database=False),
    )


class Flower(pulumi.ComponentResource):
    """Flower: Deployment + ClusterIP Service, closed to all network ingress."""

    service_name: pulumi.Output[str]
    """`kubectl port-forward svc/<name> 5555:5555`, then open http://localhost:5555."""

    def __init__(
        self, name: str, args: FlowerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:flower:Flower", name, None, opts)
        validate_object_name(name, "Flower name")
        child = child_options(self, opts)
        k8s.apps.v1.Deployment(
            f"{name}-deployment", flower_deployment_args(name, args),
            opts=child_options(self, opts, custom_timeouts=workload_timeouts(30)))
        service = k8s.core.v1.Service(
            f"{name}-service", flower_service_args(name, args), opts=child
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", flower_network_policy_args(name, args), opts=child
        )
        self.service_name = service.metadata.name
        self.register_outputs({"service_name": self.service_name})
