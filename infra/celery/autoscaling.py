"""How a worker pool scales: KEDA's ScaledObject and ClusterTriggerAuthentication on (ready +
unacknowledged) queue depth, or the CPU HorizontalPodAutoscaler without KEDA, both with the same
scale-up/scale-down behaviour.

Pure builders over `WorkerPoolArgs`; registers nothing and does not install KEDA
(`infra/keda.py`).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra.app_pod import object_meta
from infra.celery.args import CpuAutoscalingArgs, QueueAutoscalingArgs, WorkerPoolArgs
from infra.celery.worker import worker_labels


def scale_behavior(args: WorkerPoolArgs) -> dict:
    """HPA behavior (autoscaling/v2 shape) shared by KEDA and the CPU fallback.

    Scale-up is fast (a backlog should be worked off now). Scale-down waits ``cooldown_seconds``
    of low load, then removes at most ``scale_down_pods_per_minute`` replicas a minute: each
    leaving pod gets its full grace period to finish its tasks, and the queue is re-measured
    before the next one leaves.
    """
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 30},
                {"type": "Pods", "value": 4, "periodSeconds": 30},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": args.cooldown_seconds,
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": args.scale_down_pods_per_minute, "periodSeconds": 60}
            ],
        },
    }


def cluster_trigger_authentication_name(namespace: str, name: str) -> str:
    """Cluster-scoped, so the namespace is part of the name (two platforms in one cluster)."""
    return f"{namespace}-{name}"


def trigger_authentication_spec(autoscaling: QueueAutoscalingArgs) -> dict:
    """Pure: KEDA reads the management-API URL (with its password) from the Secret itself, in
    KEDA's own namespace (its Secret access is restricted to it, see ``infra/keda.py``)."""
    references = [("host", autoscaling.queue_monitor_secret_key)]
    if autoscaling.queue_monitor_tls_keys is not None:
        # HTTPS to the management API, verified against the stack's CA (KEDA's rabbitmq
        # scaler: `tls: enable` with `ca`, no client certificate; never `unsafeSsl`).
        tls_key, ca_key = autoscaling.queue_monitor_tls_keys
        references += [("tls", tls_key), ("ca", ca_key)]
    return {
        "secretTargetRef": [
            {"parameter": parameter, "name": autoscaling.queue_monitor_secret_name, "key": key}
            for parameter, key in references
        ]
    }


def scaled_object_spec(name: str, args: WorkerPoolArgs, trigger_authentication: str) -> dict:
    """Pure: KEDA ScaledObject spec on (ready + unacknowledged) messages of the pool's queue.

    protocol=http: KEDA asks the RabbitMQ management API, whose ``messages`` counts ready plus
    unacknowledged messages. Over AMQP, KEDA only sees ready messages, so a pool busy with long
    tasks and an empty ready queue looks idle and gets scaled down mid-task (kedacore/keda#2572,
    #5050).
    """
    autoscaling = args.autoscaling
    if not isinstance(autoscaling, QueueAutoscalingArgs):
        raise ValueError(f"{name}: scaled_object_spec needs QueueAutoscalingArgs")
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "pollingInterval": autoscaling.polling_interval_seconds,
        # cooldownPeriod only governs the last step to zero; N -> M uses the HPA behavior below.
        "cooldownPeriod": args.cooldown_seconds,
        "minReplicaCount": args.min_replicas,
        "maxReplicaCount": args.max_replicas,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": scale_behavior(args)},
        },
        "triggers": [
            {
                "type": "rabbitmq",
                "metadata": {
                    "protocol": "http",
                    "mode": "QueueLength",
                    "queueName": args.queue,
                    "value": str(args.messages_per_replica),
                    # Explicit, though it is the default: unacknowledged messages are work in
                    # progress and must keep their workers.
                    "excludeUnacknowledged": "false",
                },
                "authenticationRef": {
                    "name": trigger_authentication,
                    "kind": "ClusterTriggerAuthentication",
                },
            }
        ],
    }


def cpu_autoscaler_args(
    name: str, args: WorkerPoolArgs
) -> k8s.autoscaling.v2.HorizontalPodAutoscalerInitArgs:
    """Pure: the fallback HPA on CPU (autoscaling/v2) when KEDA is not installed."""
    autoscaling = args.autoscaling
    if not isinstance(autoscaling, CpuAutoscalingArgs):
        raise ValueError(f"{name}: cpu_autoscaler_args needs CpuAutoscalingArgs")
    behavior = scale_behavior(args)

    def rules(direction: dict) -> k8s.autoscaling.v2.HPAScalingRulesArgs:
        return k8s.autoscaling.v2.HPAScalingRulesArgs(
            stabilization_window_seconds=direction["stabilizationWindowSeconds"],
            select_policy=direction["selectPolicy"],
            policies=[
                k8s.autoscaling.v2.HPAScalingPolicyArgs(
                    type=p["type"], value=p["value"], period_seconds=p["periodSeconds"]
                )
                for p in direction["policies"]
            ],
        )

    return k8s.autoscaling.v2.HorizontalPodAutoscalerInitArgs(
        metadata=object_meta(name, args.runtime.namespace, worker_labels(name)),
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=name
            ),
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            metrics=[
                k8s.autoscaling.v2.MetricSpecArgs(
                    type="Resource",
                    resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                        name="cpu",
                        target=k8s.autoscaling.v2.MetricTargetArgs(
                            type="Utilization",
                            average_utilization=autoscaling.target_cpu_utilization_percent,
                        ),
                    ),
                )
            ],
            behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                scale_up=rules(behavior["scaleUp"]), scale_down=rules(behavior["scaleDown"])
            ),
        ),
    )
