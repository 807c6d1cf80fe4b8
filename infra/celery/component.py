"""The `WorkerPool` component (type ``hacelery:celery:WorkerPool``): one queue's Deployment,
disruption budget, NetworkPolicy and autoscaler, wired from the package's pure builders.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.app_pod import object_meta, validate_object_name, workload_timeouts
from infra.app_policies import pod_disruption_budget_args
from infra.celery.args import QueueAutoscalingArgs, WorkerPoolArgs
from infra.celery.autoscaling import (
    cluster_trigger_authentication_name,
    cpu_autoscaler_args,
    scaled_object_spec,
    trigger_authentication_spec,
)
from infra.celery.worker import (
    worker_deployment_args,
    worker_labels,
    worker_network_policy_args,
    worker_selector,
)
from infra.resource_options import child_options


class WorkerPool(pulumi.ComponentResource):
    """Celery workers for one queue: Deployment, autoscaler, disruption budget, network policy."""

    deployment_name: pulumi.Output[str]
    """Name of the worker Deployment (for `kubectl scale`, `kubectl logs deploy/...`)."""
    autoscaler_kind: str
    """``ScaledObject`` (KEDA, queue depth) or ``HorizontalPodAutoscaler`` (CPU fallback)."""

    def __init__(
        self, name: str, args: WorkerPoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:celery:WorkerPool", name, None, opts)
        # Object names carry suffixes of up to 10 characters ("-keda-auth").
        validate_object_name(name, "WorkerPool name", max_length=52)
        child = child_options(self, opts)
        namespace = args.runtime.namespace
        labels = worker_labels(name)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", worker_deployment_args(name, args),
            opts=child_options(self, opts, custom_timeouts=workload_timeouts(
                args.termination_grace_period_seconds)),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            pod_disruption_budget_args(name, namespace, labels, worker_selector(name)),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", worker_network_policy_args(name, args), opts=child
        )

        if isinstance(args.autoscaling, QueueAutoscalingArgs):
            self.autoscaler_kind = "ScaledObject"
            keda_ready = child_options(self, opts, depends_on=list(args.autoscaling.depends_on))
            # Cluster-scoped: KEDA's Secret access is restricted to its own namespace, where
            # the queue-monitor Secret lives, and a ClusterTriggerAuthentication is how KEDA
            # resolves a Secret there for a ScaledObject in another namespace.
            auth_name = cluster_trigger_authentication_name(namespace, name)
            k8s.apiextensions.CustomResource(
                f"{name}-trigger-auth",
                api_version="keda.sh/v1alpha1",
                kind="ClusterTriggerAuthentication",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=auth_name, labels=labels),
                spec=trigger_authentication_spec(args.autoscaling),
                opts=keda_ready,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-scaled-object",
                api_version="keda.sh/v1alpha1",
                kind="ScaledObject",
                metadata=object_meta(name, namespace, labels),
                spec=scaled_object_spec(name, args, auth_name),
                opts=pulumi.ResourceOptions.merge(
                    keda_ready, pulumi.ResourceOptions(depends_on=[deployment])
                ),
            )
        else:
            self.autoscaler_kind = "HorizontalPodAutoscaler"
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-autoscaler", cpu_autoscaler_args(name, args), opts=child
            )

        self.deployment_name = deployment.metadata.name
        self.register_outputs(
            {"deployment_name": self.deployment_name, "autoscaler_kind": self.autoscaler_kind}
        )
