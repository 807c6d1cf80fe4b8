"""Inputs of a Celery worker pool: `WorkerPoolArgs` and its autoscaling choice
(`QueueAutoscalingArgs` for KEDA on queue depth, `CpuAutoscalingArgs` without KEDA), each
default with its reason, and the shutdown contract (Celery's soft-shutdown timeout derived from
the pod's grace period).

Registers nothing and reads no stack config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi

from infra.app_pod import AppRuntimeArgs, ContainerResources, SecretKeyRef
from infra.network_policy import ExternalEgress
from infra.validation import check

WORKER_APP_NAME = "celery-worker"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


def soft_shutdown_timeout_seconds(termination_grace_period_seconds: int) -> float:
    """Celery's soft-shutdown timeout for a pod with this grace period.

    Kubernetes SIGKILLs the pod ``termination_grace_period_seconds`` after SIGTERM. Celery must
    finish its soft shutdown (tasks running to completion), then its cold shutdown (cancel what is
    left, return unacknowledged messages to the queue, close the connection) before that. The
    margin is 10% of the grace, at least 5 s and at most 30 s.
    """
    margin = min(30.0, max(5.0, termination_grace_period_seconds * 0.1))
    return float(termination_grace_period_seconds) - margin


MIN_TERMINATION_GRACE_SECONDS = 15
MAX_TERMINATION_GRACE_SECONDS = 3600
"""The app accepts a soft-shutdown timeout of at most 3600 s (app/settings.py)."""
MAX_COOLDOWN_SECONDS = 3600  # HPA behavior.scaleDown.stabilizationWindowSeconds maximum


@dataclass(frozen=True, kw_only=True)
class QueueAutoscalingArgs:
    """Scale on queue depth with KEDA's RabbitMQ scaler (needs KEDA installed)."""

    queue_monitor_secret_name: pulumi.Input[str]
    """Secret whose key ``queue_monitor_secret_key`` holds the management-API URL
    ``http://user:pass@<rabbitmq-client-svc>:15672/<vhost-url-encoded>``."""
    queue_monitor_secret_key: str = "host"
    queue_monitor_tls_keys: tuple[str, str] | None = None
    """Keys of the same Secret holding ``enable`` and the CA certificate (KEDA's ``tls`` and
    ``ca`` parameters) when the management API speaks HTTPS; None: plain HTTP."""
    messages_per_replica: int | None = None
    """Target (ready + unacknowledged) messages per replica; None: the pool's concurrency."""
    polling_interval_seconds: int = 15
    depends_on: tuple[pulumi.Resource, ...] = ()
    """The KEDA release: its CRDs must exist before a ScaledObject can be created."""

    def __post_init__(self) -> None:
        SecretKeyRef(name=self.queue_monitor_secret_name, key=self.queue_monitor_secret_key)
        check(
            self.messages_per_replica is None or self.messages_per_replica >= 1,
            "QueueAutoscalingArgs.messages_per_replica",
            self.messages_per_replica,
            "None (the pool's concurrency) or an integer >= 1",
        )
        check(
            5 <= self.polling_interval_seconds <= 300,
            "QueueAutoscalingArgs.polling_interval_seconds",
            self.polling_interval_seconds,
            "seconds in 5..300",
        )


@dataclass(frozen=True, kw_only=True)
class CpuAutoscalingArgs:
    """Fallback without KEDA: a CPU HorizontalPodAutoscaler (blind to queue depth)."""

    target_cpu_utilization_percent: int = 70

    def __post_init__(self) -> None:
        check(
            10 <= self.target_cpu_utilization_percent <= 100,
            "CpuAutoscalingArgs.target_cpu_utilization_percent",
            self.target_cpu_utilization_percent,
            "a percentage in 10..100",
        )


@dataclass(frozen=True, kw_only=True)
class WorkerPoolArgs:
    """Inputs for WorkerPool: one Celery queue's workers. Only ``runtime`` and ``queue`` are
    required; every other default is here."""

    runtime: AppRuntimeArgs
    queue: str
    """The Celery queue this pool consumes (``small``, ``large``, ...)."""
    concurrency: int = 2
    """Worker processes per pod (``--concurrency``)."""
    prefetch_multiplier: int = 1
    """Messages each process may hold unacknowledged (``--prefetch-multiplier``). 1 suits long
    tasks (nothing waits behind a running one); short-task pools gain ~1.5x throughput from 16
    and lose nothing: acks stay late, so a dead worker's prefetched messages are redelivered."""
    resources: ContainerResources = field(default_factory=ContainerResources)
    migrate_resources: ContainerResources = field(default_factory=ContainerResources)
    """Of the `migrate` initContainer (short-lived; only alembic and the database driver)."""
    min_replicas: int = 1
    """0 allowed with queue autoscaling only (KEDA scales to zero; an HPA cannot)."""
    max_replicas: int = 10
    termination_grace_period_seconds: int = 300
    """Longest task the pool must be able to finish on scale-down/rollout; long tasks need more."""
    cooldown_seconds: int = 300
    """Scale-down stabilization: replicas leave only after load stayed low this long."""
    scale_down_pods_per_minute: int = 1
    """Replicas removed per minute at most, so they leave one at a time."""
    autoscaling: QueueAutoscalingArgs | CpuAutoscalingArgs = field(
        default_factory=CpuAutoscalingArgs
    )
    heartbeat_max_age_seconds: int = 60
    """Liveness fails when the worker's heartbeat file is older than this."""
    log_level: str = "INFO"
    allowed_egress: tuple[ExternalEgress, ...] = ()
    """Address blocks outside the cluster the tasks may call (``[{cidr, ports}]``); by default
    a worker may reach kube-dns, the broker and the database only."""

    def __post_init__(self) -> None:
        owner = "WorkerPoolArgs"
        check(
            isinstance(self.queue, str) and bool(_QUEUE_NAME.match(self.queue)),
            f"{owner}.queue",
            self.queue,
            "a queue name: letters, digits, '_', '.', ':', '-'",
        )
        check(
            1 <= self.prefetch_multiplier <= 256,
            f"{owner}.prefetch_multiplier",
            self.prefetch_multiplier,
            "1..256 (1 for long tasks)",
        )
        check(
            1 <= self.concurrency <= 256,
            f"{owner}.concurrency",
            self.concurrency,
            "worker processes per pod in 1..256",
        )
        queue_autoscaling = isinstance(self.autoscaling, QueueAutoscalingArgs)
        check(
            self.min_replicas >= (0 if queue_autoscaling else 1),
            f"{owner}.min_replicas",
            self.min_replicas,
            ">= 0" if queue_autoscaling else ">= 1 (scaling to zero needs KEDA queue autoscaling)",
        )
        check(
            self.max_replicas >= max(1, self.min_replicas),
            f"{owner}.max_replicas",
            self.max_replicas,
            f">= 1 and >= min_replicas ({self.min_replicas})",
        )
        check(
            MIN_TERMINATION_GRACE_SECONDS
            <= self.termination_grace_period_seconds
            <= MAX_TERMINATION_GRACE_SECONDS,
            f"{owner}.termination_grace_period_seconds",
            self.termination_grace_period_seconds,
            f"seconds in {MIN_TERMINATION_GRACE_SECONDS}..{MAX_TERMINATION_GRACE_SECONDS}, at "
            "least the longest task (longer tasks must checkpoint and be retried)",
        )
        check(
            0 <= self.cooldown_seconds <= MAX_COOLDOWN_SECONDS,
            f"{owner}.cooldown_seconds",
            self.cooldown_seconds,
            f"seconds in 0..{MAX_COOLDOWN_SECONDS} (the HPA stabilization window maximum)",
        )
        check(
            self.scale_down_pods_per_minute >= 1,
            f"{owner}.scale_down_pods_per_minute",
            self.scale_down_pods_per_minute,
            "an integer >= 1",
        )
        check(
            10 <= self.heartbeat_max_age_seconds <= 3600,
            f"{owner}.heartbeat_max_age_seconds",
            self.heartbeat_max_age_seconds,
            "seconds in 10..3600",
        )
        check(
            self.log_level in LOG_LEVELS,
            f"{owner}.log_level",
            self.log_level,
            f"one of {', '.join(LOG_LEVELS)}",
        )

    @property
    def soft_shutdown_timeout_seconds(self) -> float:
        return soft_shutdown_timeout_seconds(self.termination_grace_period_seconds)

    @property
    def messages_per_replica(self) -> int:
        if isinstance(self.autoscaling, QueueAutoscalingArgs):
            return self.autoscaling.messages_per_replica or self.concurrency
        return self.concurrency
