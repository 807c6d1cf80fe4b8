"""Celery worker pools on Kubernetes.

Owns, per queue, a `WorkerPool`: the worker Deployment (exec-form `celery worker`, so the worker
itself is PID 1 and receives SIGTERM), the shutdown contract between Kubernetes and Celery (the
pod's termination grace and Celery's soft-shutdown timeout derived from it), a liveness check
that reads the worker's heartbeat file instead of pinging the broker, a PodDisruptionBudget, a
NetworkPolicy (egress only), and the autoscaler: a KEDA ScaledObject on queue depth (ready +
unacknowledged messages) or, without KEDA, a CPU HorizontalPodAutoscaler.

The package, one concept per module: `args` (the pool's inputs and the shutdown contract),
`worker` (the Deployment and its NetworkPolicy), `autoscaling` (KEDA or the CPU autoscaler) and
`component` (the ComponentResource). The pod pieces every app-image workload shares live in
`infra/app_pod.py` and `infra/app_policies.py`; they are re-exported here, as is everything
public, so ``from infra.celery import WorkerPool, AppRuntimeArgs`` keeps working.

Does not own: the namespace, the Secrets themselves (the RabbitMQ and PostgreSQL components
create them), KEDA's installation (`infra/keda.py`), Celery's settings (`app/settings.py`), or
the image (`infra/images.py`).
"""

from infra.app_pod import (
    APP_UID,
    BROKER_URL_ENV,
    DATABASE_URL_ENV,
    HEARTBEAT_FILE,
    HEARTBEAT_FILE_ENV,
    MANAGED_ENV,
    REMAP_SIGTERM_ENV,
    SOFT_SHUTDOWN_ENV,
    TMP_PATH,
    TMP_VOLUME,
    AppRuntimeArgs,
    ContainerResources,
    SecretKeyRef,
    app_container,
    app_environment,
    app_pod_spec,
    migrate_container,
    object_meta,
    resource_requirements,
    secret_env,
    tmp_mount,
    tmp_volume,
    validate_object_name,
)
from infra.app_policies import (
    network_policy_args,
    pod_disruption_budget_args,
    runtime_egress,
)
from infra.celery.args import (
    LOG_LEVELS,
    MAX_COOLDOWN_SECONDS,
    MAX_TERMINATION_GRACE_SECONDS,
    MIN_TERMINATION_GRACE_SECONDS,
    WORKER_APP_NAME,
    CpuAutoscalingArgs,
    QueueAutoscalingArgs,
    WorkerPoolArgs,
    soft_shutdown_timeout_seconds,
)
from infra.celery.autoscaling import (
    cluster_trigger_authentication_name,
    cpu_autoscaler_args,
    scale_behavior,
    scaled_object_spec,
    trigger_authentication_spec,
)
from infra.celery.component import WorkerPool
from infra.celery.worker import (
    worker_command,
    worker_container,
    worker_deployment_args,
    worker_egress,
    worker_labels,
    worker_liveness_probe,
    worker_network_policy_args,
    worker_selector,
    worker_startup_probe,
)

__all__ = [
    "APP_UID",
    "BROKER_URL_ENV",
    "DATABASE_URL_ENV",
    "HEARTBEAT_FILE",
    "HEARTBEAT_FILE_ENV",
    "LOG_LEVELS",
    "MANAGED_ENV",
    "MAX_COOLDOWN_SECONDS",
    "MAX_TERMINATION_GRACE_SECONDS",
    "MIN_TERMINATION_GRACE_SECONDS",
    "REMAP_SIGTERM_ENV",
    "SOFT_SHUTDOWN_ENV",
    "TMP_PATH",
    "TMP_VOLUME",
    "WORKER_APP_NAME",
    "AppRuntimeArgs",
    "ContainerResources",
    "CpuAutoscalingArgs",
    "QueueAutoscalingArgs",
    "SecretKeyRef",
    "WorkerPool",
    "WorkerPoolArgs",
    "app_container",
    "app_environment",
    "app_pod_spec",
    "cluster_trigger_authentication_name",
    "cpu_autoscaler_args",
    "migrate_container",
    "network_policy_args",
    "object_meta",
    "pod_disruption_budget_args",
    "resource_requirements",
    "runtime_egress",
    "scale_behavior",
    "scaled_object_spec",
    "secret_env",
    "soft_shutdown_timeout_seconds",
    "tmp_mount",
    "tmp_volume",
    "trigger_authentication_spec",
    "validate_object_name",
    "worker_command",
    "worker_container",
    "worker_deployment_args",
    "worker_egress",
    "worker_labels",
    "worker_liveness_probe",
    "worker_network_policy_args",
    "worker_selector",
    "worker_startup_probe",
]
