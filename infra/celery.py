"""Celery worker pools on Kubernetes, and the pod pieces every app-image workload shares.

Owns, per queue, a `WorkerPool`: the worker Deployment (exec-form `celery worker`, so the worker
itself is PID 1 and receives SIGTERM), the shutdown contract between Kubernetes and Celery (the
pod's termination grace and Celery's soft-shutdown timeout derived from it), a liveness check
that reads the worker's heartbeat file instead of pinging the broker, a PodDisruptionBudget, a
NetworkPolicy (egress only), and the autoscaler: a KEDA ScaledObject on queue depth (ready +
unacknowledged messages) or, without KEDA, a CPU HorizontalPodAutoscaler.

Also owns the pieces shared by every pod that runs the app image (web, scheduler, Flower):
credentials by Secret reference, resource requests/limits, the /tmp emptyDir under a read-only
root filesystem, and the restricted security contexts. They live here because the worker pool is
the first of those workloads; `infra/web.py`, `infra/scheduler.py` and `infra/flower.py` import
them.

Does not own: the namespace, the Secrets themselves (the RabbitMQ and PostgreSQL components
create them), KEDA's installation (`infra/keda.py`), Celery's settings (`app/settings.py`), or
the image (`infra/images.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import names, pod_security
from infra.images import validate_image_reference
from infra.quantities import parse_quantity
from infra.validation import check

APP_UID = 10001
"""The app image's non-root user (app/Dockerfile)."""

TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"  # noqa: S108 - an emptyDir per pod, the only writable path
HEARTBEAT_FILE = f"{TMP_PATH}/celery-worker-heartbeat"

BROKER_URL_ENV = "CELERY_BROKER_URL"
DATABASE_URL_ENV = "DATABASE_URL"
SOFT_SHUTDOWN_ENV = "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"
HEARTBEAT_FILE_ENV = "CELERY_HEARTBEAT_FILE"
REMAP_SIGTERM_ENV = "REMAP_SIGTERM"
MANAGED_ENV = frozenset(
    {BROKER_URL_ENV, DATABASE_URL_ENV, SOFT_SHUTDOWN_ENV, HEARTBEAT_FILE_ENV, REMAP_SIGTERM_ENV}
)

WORKER_APP_NAME = "celery-worker"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
# A URL with user-info (scheme://user:pass@host) in a plain setting would put a credential in the
# Deployment spec and in plan output.
_CREDENTIAL_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


def validate_object_name(value: str, field_name: str, *, max_length: int = 63) -> str:
    """A Kubernetes object name that is also a DNS label (Services, Deployments, pods' prefix)."""
    check(
        isinstance(value, str) and bool(_DNS_LABEL.match(value)) and len(value) <= max_length,
        field_name,
        value,
        f"a DNS label: lowercase letters, digits and '-', at most {max_length} characters",
    )
    return value


# --------------------------------------------------------------------------- shared pod pieces

@dataclass(frozen=True, kw_only=True)
class ContainerResources:
    """Requests and limits of one container. Every container gets requests and a memory limit."""

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    memory_limit: str = "256Mi"
    """A memory limit on every container: a leak kills one pod, not the node's neighbours."""
    cpu_limit: str | None = None
    """No CPU limit by default: CFS throttling stalls heartbeats and probes on an idle node."""

    def __post_init__(self) -> None:
        owner = "ContainerResources"
        cpu_request = parse_quantity(self.cpu_request, f"{owner}.cpu_request")
        memory_request = parse_quantity(self.memory_request, f"{owner}.memory_request")
        memory_limit = parse_quantity(self.memory_limit, f"{owner}.memory_limit")
        check(
            cpu_request > 0,
            f"{owner}.cpu_request",
            self.cpu_request,
            "a CPU quantity > 0 (the scheduler places pods by requests)",
        )
        check(
            memory_request > 0,
            f"{owner}.memory_request",
            self.memory_request,
            "a memory quantity > 0 (the scheduler places pods by requests)",
        )
        check(
            memory_limit >= memory_request,
            f"{owner}.memory_limit",
            self.memory_limit,
            f"a quantity >= memory_request ({self.memory_request})",
        )
        if self.cpu_limit is not None:
            cpu_limit = parse_quantity(self.cpu_limit, f"{owner}.cpu_limit")
            check(
                cpu_limit >= cpu_request,
                f"{owner}.cpu_limit",
                self.cpu_limit,
                f"None or a quantity >= cpu_request ({self.cpu_request})",
            )


def resource_requirements(resources: ContainerResources) -> k8s.core.v1.ResourceRequirementsArgs:
    limits = {"memory": resources.memory_limit}
    if resources.cpu_limit is not None:
        limits["cpu"] = resources.cpu_limit
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
        limits=limits,
    )


@dataclass(frozen=True, kw_only=True)
class SecretKeyRef:
    """One key of a Kubernetes Secret. Only the name and key enter a spec, never the value."""

    name: pulumi.Input[str]
    """Secret name (a plain string is validated; an Output from another component is trusted)."""
    key: str

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            check(
                bool(_DNS_SUBDOMAIN.match(self.name)),
                "SecretKeyRef.name",
                self.name,
                "a Secret name: lowercase letters, digits, '-' and '.'",
            )
        check(
            isinstance(self.key, str) and bool(_SECRET_KEY.match(self.key)),
            "SecretKeyRef.key",
            self.key,
            "a Secret key: letters, digits, '-', '_' and '.'",
        )


@dataclass(frozen=True, kw_only=True)
class AppRuntimeArgs:
    """What every pod that runs the app image shares: where, which image, which credentials."""

    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    """Pinned image reference (a plain string is checked: tag or digest, never 'latest')."""
    broker_url: SecretKeyRef
    """Secret key holding CELERY_BROKER_URL (an AMQP URL or a ';'-separated failover list)."""
    database_url: SecretKeyRef | None = None
    """Secret key holding DATABASE_URL; None runs the app on its SQLite fallback (local only)."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Plain, non-secret environment (e.g. LCS_LARGE_THRESHOLD). Credentials are refused here."""
    secret_settings: Mapping[str, SecretKeyRef] = field(default_factory=dict)
    """Environment read from Secrets by reference: credentials the tasks need (API keys, DSNs)."""

    def __post_init__(self) -> None:
        if isinstance(self.image, str):
            validate_image_reference(self.image, field="AppRuntimeArgs.image")
        if isinstance(self.namespace, str):
            validate_object_name(self.namespace, "AppRuntimeArgs.namespace")
        for name, value in self.settings.items():
            field_name = f"AppRuntimeArgs.settings[{name!r}]"
            check(
                bool(_ENV_NAME.match(name)),
                field_name,
                name,
                "an environment variable name (letters, digits, '_', not starting with a digit)",
            )
            check(
                name not in MANAGED_ENV,
                field_name,
                name,
                f"a name the platform does not set itself (not {', '.join(sorted(MANAGED_ENV))})",
            )
            check(isinstance(value, str), field_name, value, "a string (quote it)")
            check(
                not _CREDENTIAL_URL.match(value),
                field_name,
                "<redacted URL with password>",
                "no credentials: put the URL in a Secret and reference it",
            )
        for name in self.secret_settings:
            field_name = f"AppRuntimeArgs.secret_settings[{name!r}]"
            check(
                bool(_ENV_NAME.match(name)) and name not in MANAGED_ENV,
                field_name,
                name,
                "an environment variable name the platform does not set itself",
            )
            check(name not in self.settings, field_name, name,
                  "a name not also given as a plain setting")


def secret_env(name: str, ref: SecretKeyRef) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=ref.name, key=ref.key)
        ),
    )


def app_environment(
    runtime: AppRuntimeArgs, extra: Mapping[str, str] | None = None
) -> list[k8s.core.v1.EnvVarArgs]:
    """Broker/database URLs by Secret reference, then plain settings, then ``extra``."""
    env = [secret_env(BROKER_URL_ENV, runtime.broker_url)]
    if runtime.database_url is not None:
        env.append(secret_env(DATABASE_URL_ENV, runtime.database_url))
    env.extend(secret_env(k, ref) for k, ref in sorted(runtime.secret_settings.items()))
    merged = {**runtime.settings, **(extra or {})}
    env.extend(k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(merged.items()))
    return env


def tmp_volume() -> k8s.core.v1.VolumeArgs:
    # The root filesystem is read-only; /tmp is the one writable place (heartbeat file, Python's
    # tempfiles). The size limit evicts a runaway writer instead of filling the node's disk.
    return k8s.core.v1.VolumeArgs(
        name=TMP_VOLUME, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="256Mi")
    )


def tmp_mount() -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name=TMP_VOLUME, mount_path=TMP_PATH)


def app_container(
    *,
    name: str,
    runtime: AppRuntimeArgs,
    command: Sequence[str],
    resources: ContainerResources,
    extra_env: Mapping[str, str] | None = None,
    ports: Sequence[k8s.core.v1.ContainerPortArgs] | None = None,
    liveness_probe: k8s.core.v1.ProbeArgs | None = None,
    readiness_probe: k8s.core.v1.ProbeArgs | None = None,
    startup_probe: k8s.core.v1.ProbeArgs | None = None,
    lifecycle: k8s.core.v1.LifecycleArgs | None = None,
) -> k8s.core.v1.ContainerArgs:
    """A container of the app image: exec-form command, restricted, resources, /tmp mounted."""
    if not command or command[0] in {"sh", "bash", "/bin/sh", "/bin/bash"}:
        # A shell as PID 1 does not forward SIGTERM: the app would be SIGKILLed after the grace.
        raise ValueError(f"{name}: command {list(command)!r} must start the program itself")
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=runtime.image,
        image_pull_policy="IfNotPresent",
        command=list(command),
        env=app_environment(runtime, extra_env),
        ports=list(ports) if ports else None,
        resources=resource_requirements(resources),
        security_context=pod_security.container_security_context(APP_UID),
        volume_mounts=[tmp_mount()],
        liveness_probe=liveness_probe,
        readiness_probe=readiness_probe,
        startup_probe=startup_probe,
        lifecycle=lifecycle,
    )


def app_pod_spec(
    *,
    containers: Sequence[k8s.core.v1.ContainerArgs],
    init_containers: Sequence[k8s.core.v1.ContainerArgs] | None = None,
    termination_grace_period_seconds: int = 30,
    restart_policy: str | None = None,
    topology_spread_selector: Mapping[str, str] | None = None,
) -> k8s.core.v1.PodSpecArgs:
    """Pod spec shared by every app-image workload (restricted, no API token, /tmp emptyDir)."""
    spread = None
    if topology_spread_selector:
        # Spread replicas over nodes and zones so one node or zone failure takes a fraction of
        # the pool; ScheduleAnyway so a small cluster still schedules every replica.
        spread = [
            k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1,
                topology_key=key,
                when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=dict(topology_spread_selector)
                ),
            )
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ]
    return k8s.core.v1.PodSpecArgs(
        containers=list(containers),
        init_containers=list(init_containers) if init_containers else None,
        security_context=pod_security.pod_security_context(APP_UID),
        # The app never talks to the Kubernetes API; a mounted token would only help an attacker.
        automount_service_account_token=False,
        # Service links inject FLOWER_PORT=tcp://... style variables that the app's own settings
        # (Flower reads FLOWER_*) would misparse; nothing here uses them.
        enable_service_links=False,
        termination_grace_period_seconds=termination_grace_period_seconds,
        restart_policy=restart_policy,
        volumes=[tmp_volume()],
        topology_spread_constraints=spread,
    )


def migrate_container(
    runtime: AppRuntimeArgs, resources: ContainerResources
) -> k8s.core.v1.ContainerArgs:
    """initContainer: `python -m app.migrate`, so the schema is current before the app starts.

    Idempotent and serialised by a PostgreSQL advisory lock, so every web and worker pod may run
    it at once; a pod whose schema is already current spends one query on it.
    """
    return app_container(
        name="migrate",
        runtime=runtime,
        command=["python", "-m", "app.migrate"],
        resources=resources,
    )


def object_meta(
    name: str, namespace: pulumi.Input[str], labels: Mapping[str, str], **extra
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels), **extra)


def dns_egress_rule() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    # Name resolution of the broker/database Services; kube-dns (or NodeLocal DNSCache) lives
    # outside the namespace, so port 53 is open to any destination.
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        ports=[
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="UDP", port=53),
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=53),
        ]
    )


def platform_egress_rule() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    # Broker and database are pods of the platform in the same namespace; nothing else is needed.
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=names.platform_pod_selector()
                )
            )
        ]
    )


def network_policy_args(
    name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    pod_selector: Mapping[str, str],
    *,
    ingress: Sequence[k8s.networking.v1.NetworkPolicyIngressRuleArgs] = (),
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Both directions listed in policyTypes: no ingress rule means no ingress at all."""
    return k8s.networking.v1.NetworkPolicyInitArgs(
        metadata=object_meta(name, namespace, labels),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_selector)),
            policy_types=["Ingress", "Egress"],
            ingress=list(ingress),
            egress=[dns_egress_rule(), platform_egress_rule()],
        ),
    )


def pod_disruption_budget_args(
    name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    *,
    max_unavailable: int = 1,
) -> k8s.policy.v1.PodDisruptionBudgetInitArgs:
    return k8s.policy.v1.PodDisruptionBudgetInitArgs(
        metadata=object_meta(name, namespace, labels),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            # maxUnavailable (not minAvailable) so a pool scaled to zero never blocks node drains.
            max_unavailable=max_unavailable,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
            # A pod stuck unhealthy (e.g. crash-looping) may be evicted even when the budget is
            # spent, so it can't wedge a node upgrade.
            unhealthy_pod_eviction_policy="AlwaysAllow",
        ),
    )


# --------------------------------------------------------------------------- worker pools


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


def worker_labels(name: str) -> dict[str, str]:
    return names.labels(WORKER_APP_NAME, name, component="worker")


def worker_selector(name: str) -> dict[str, str]:
    return names.selector_labels(WORKER_APP_NAME, name)


def worker_command(args: WorkerPoolArgs) -> list[str]:
    """Exec form: `celery` is PID 1, so SIGTERM reaches the worker, not a shell."""
    return [
        "celery",
        "--app",
        "app.celery_app",
        "worker",
        "--queues",
        args.queue,
        "--concurrency",
        str(args.concurrency),
        "--prefetch-multiplier",
        str(args.prefetch_multiplier),
        # Unique per pod (the pod name is the hostname), so Flower and `celery inspect` tell
        # replicas apart and the queue shows in the node name.
        "--hostname",
        f"{args.queue}@%h",
        # No mingle: at every (re)connect Celery waits ~1 s for other workers to answer a
        # "hello" (to sync revoked ids, which live in memory only and are lost with a pod
        # anyway); after a broker node died that wait delayed the first task on the new node.
        "--without-mingle",
        # No gossip: workers need not track each other (nothing here uses election or worker
        # heartbeats between workers); it costs an exclusive queue per worker on the node the
        # worker is connected to, re-declared on every failover. Flower relies on task events
        # and worker heartbeats, which stay on.
        "--without-gossip",
        "--loglevel",
        args.log_level,
    ]


def worker_liveness_probe(args: WorkerPoolArgs) -> k8s.core.v1.ProbeArgs:
    # The heartbeat file is touched by a timer in the worker's main process, even while every
    # pool process is busy with a long task, and without any broker round-trip. A broker-based
    # check (`celery inspect ping`) would restart healthy workers during a broker failover or
    # while all processes are busy: the failures users of other charts report.
    return k8s.core.v1.ProbeArgs(
        exec_=k8s.core.v1.ExecActionArgs(
            command=[
                "python",
                "-m",
                "app.healthcheck",
                "worker",
                "--max-age",
                str(args.heartbeat_max_age_seconds),
            ]
        ),
        period_seconds=30,
        timeout_seconds=10,
        failure_threshold=3,
    )


def worker_startup_probe(args: WorkerPoolArgs) -> k8s.core.v1.ProbeArgs:
    # Until the first heartbeat (imports, broker connection on start-up) liveness is held off for
    # up to 5 minutes, so a slow start during a broker outage is not a crash loop.
    probe = worker_liveness_probe(args)
    return k8s.core.v1.ProbeArgs(
        exec_=probe.exec_, period_seconds=10, timeout_seconds=10, failure_threshold=30
    )


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def worker_container(args: WorkerPoolArgs) -> k8s.core.v1.ContainerArgs:
    """Pure: the worker container of one pool."""
    return app_container(
        name="worker",
        runtime=args.runtime,
        command=worker_command(args),
        resources=args.resources,
        extra_env={
            # Celery's soft shutdown (a time-limited warm shutdown) ends just before Kubernetes'
            # SIGKILL, leaving time to requeue whatever is still running.
            SOFT_SHUTDOWN_ENV: _seconds_text(args.soft_shutdown_timeout_seconds),
            # Celery starts its soft shutdown on SIGQUIT; Kubernetes sends SIGTERM.
            REMAP_SIGTERM_ENV: "SIGQUIT",
            HEARTBEAT_FILE_ENV: HEARTBEAT_FILE,
        },
        liveness_probe=worker_liveness_probe(args),
        startup_probe=worker_startup_probe(args),
    )


def worker_deployment_args(name: str, args: WorkerPoolArgs) -> k8s.apps.v1.DeploymentInitArgs:
    """Pure: the pool's Deployment. ``replicas`` is left to the autoscaler."""
    labels = worker_labels(name)
    return k8s.apps.v1.DeploymentInitArgs(
        metadata=object_meta(name, args.runtime.namespace, labels),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            # No replicas field: the autoscaler owns it, and a `pulumi up` must not reset a pool
            # that scaled out for a backlog (which would kill busy workers).
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=worker_selector(name)),
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                # New workers start before old ones drain: capacity never drops during a rollout.
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                    max_surge="25%", max_unavailable=0
                ),
            ),
            revision_history_limit=5,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=app_pod_spec(
                    containers=[worker_container(args)],
                    # Tasks write to the database: a worker never starts on an old schema.
                    init_containers=[migrate_container(args.runtime, args.migrate_resources)],
                    termination_grace_period_seconds=args.termination_grace_period_seconds,
                    topology_spread_selector=worker_selector(name),
                ),
            ),
        ),
    )


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


def trigger_authentication_spec(autoscaling: QueueAutoscalingArgs) -> dict:
    """Pure: KEDA reads the management-API URL (with its password) from the Secret itself."""
    return {
        "secretTargetRef": [
            {
                "parameter": "host",
                "name": autoscaling.queue_monitor_secret_name,
                "key": autoscaling.queue_monitor_secret_key,
            }
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
                "authenticationRef": {"name": trigger_authentication},
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


def worker_network_policy_args(
    name: str, args: WorkerPoolArgs
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Workers only call out (broker, database, DNS); nothing may connect to them."""
    return network_policy_args(
        name, args.runtime.namespace, worker_labels(name), worker_selector(name)
    )


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
        child = pulumi.ResourceOptions(parent=self)
        namespace = args.runtime.namespace
        labels = worker_labels(name)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", worker_deployment_args(name, args), opts=child
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
            keda_ready = pulumi.ResourceOptions(
                parent=self, depends_on=list(args.autoscaling.depends_on)
            )
            auth_name = f"{name}-keda-auth"
            k8s.apiextensions.CustomResource(
                f"{name}-trigger-auth",
                api_version="keda.sh/v1alpha1",
                kind="TriggerAuthentication",
                metadata=object_meta(auth_name, namespace, labels),
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
