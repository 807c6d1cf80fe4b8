"""The pod pieces every workload that runs the app image shares (web, workers, scheduler,
sweeper, Flower): the app image's environment contract, `AppRuntimeArgs` (namespace, image,
credentials by Secret reference, plain settings), container resources, the exec-form container
with the restricted security context and the /tmp emptyDir under a read-only root filesystem, the
pod spec (no API token, spread over nodes and zones), the `migrate` initContainer and object
metadata.

Does not own any Kubernetes object of its own (each workload's module builds its Deployment,
Job or CronJob from these pieces), the Secrets it references (the RabbitMQ, PostgreSQL and app
secrets components create them), or the NetworkPolicy/PodDisruptionBudget shapes
(`infra/app_policies.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import pod_security
from infra.images import validate_image_reference
from infra.network_policy import Peer
from infra.quantities import parse_quantity
from infra.tls import TRUST_BUNDLE_FILE, trust_bundle_mount, trust_bundle_volume
from infra.validation import check

APP_UID = 10001
"""The app image's non-root user (app/Dockerfile)."""

TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"  # noqa: S108 - an emptyDir per pod, the only writable path
HEARTBEAT_FILE = f"{TMP_PATH}/celery-worker-heartbeat"

BROKER_URL_ENV = "CELERY_BROKER_URL"
BROKER_CA_FILE_ENV = "CELERY_BROKER_CA_FILE"
"""The CA ``amqps://`` broker URLs are verified against (``app.settings``)."""
DATABASE_URL_ENV = "DATABASE_URL"
SOFT_SHUTDOWN_ENV = "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"
HEARTBEAT_FILE_ENV = "CELERY_HEARTBEAT_FILE"
REMAP_SIGTERM_ENV = "REMAP_SIGTERM"
MANAGED_ENV = frozenset(
    {BROKER_URL_ENV, DATABASE_URL_ENV, SOFT_SHUTDOWN_ENV, HEARTBEAT_FILE_ENV, REMAP_SIGTERM_ENV}
)

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
    trust_bundle: pulumi.Input[str] | None = None
    """Name of the ConfigMap holding the stack's CA certificate (``infra.tls.TrustBundle``):
    mounted at ``TRUST_BUNDLE_DIR`` in every app container, so the broker and database URLs can
    verify their servers (``sslmode=verify-full&sslrootcert=...``). None: no TLS to verify."""
    broker_peer: Peer | None = None
    """The broker's pods and AMQP port (wired by the platform from the RabbitMQ component):
    every app pod's NetworkPolicy allows egress there."""
    database_peer: Peer | None = None
    """The database's pod and port (wired from the PostgreSQL component)."""
    secrets_checksum: pulumi.Input[str] | None = None
    """A digest of what the referenced Secrets hold (``secrets_checksum()``). It is written on
    the pod template of every long-running app workload, so a changed broker URL, database URL
    or app secret rolls the pods: they read their environment only when they start."""

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
    if runtime.trust_bundle is not None:
        # amqps:// URLs verify the broker against the stack's CA, and nothing else.
        env.append(k8s.core.v1.EnvVarArgs(name=BROKER_CA_FILE_ENV, value=TRUST_BUNDLE_FILE))
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
        volume_mounts=[tmp_mount()]
        + ([trust_bundle_mount()] if runtime.trust_bundle is not None else []),
        liveness_probe=liveness_probe,
        readiness_probe=readiness_probe,
        startup_probe=startup_probe,
        lifecycle=lifecycle,
    )


def app_pod_spec(
    *,
    runtime: AppRuntimeArgs,
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
        volumes=[tmp_volume()]
        + ([trust_bundle_volume(runtime.trust_bundle)] if runtime.trust_bundle is not None
           else []),
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


WORKLOAD_CREATE_TIMEOUT = "20m"
"""How long `pulumi up` waits for an app Deployment to become ready. The provider's default is
10 minutes (pulumi-kubernetes provider/pkg/await/await.go); a first deployment may have to wait
for the node autoscaler to add a node and for the first pull of the image, on top of the
migrate initContainer."""


def timeout_minutes(seconds: float) -> str:
    """A Pulumi custom timeout (``"35m"``) of at least ``seconds``."""
    return f"{max(1, -(-int(seconds) // 60))}m"


def workload_timeouts(termination_grace_period_seconds: int) -> pulumi.CustomTimeouts:
    """Create/update/delete timeouts of an app Deployment whose pods get this grace period.

    Delete: the provider deletes in the foreground and waits until every pod is gone
    (pulumi-kubernetes await.go; metadata/overrides.go DeletionPropagation, Foreground by
    default), and a worker may use its whole grace period finishing a task: the default 10
    minutes would fail a `pulumi destroy` of a pool with a 15- or 30-minute grace."""
    return pulumi.CustomTimeouts(
        create=WORKLOAD_CREATE_TIMEOUT,
        update=WORKLOAD_CREATE_TIMEOUT,
        delete=timeout_minutes(termination_grace_period_seconds + 300),
    )


SECRETS_CHECKSUM_ANNOTATION = "hacelery.io/secrets-checksum"


def secrets_checksum(*parts: str) -> str:
    """Pure: one digest over the given contents (order matters, as given)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def pod_template_metadata(
    labels: Mapping[str, str], runtime: AppRuntimeArgs
) -> k8s.meta.v1.ObjectMetaArgs:
    """The pod template's labels, and the Secrets' checksum that rolls the pods when it changes
    (the provider updates Secrets in place, and a running pod never re-reads its env)."""
    annotations = None
    if runtime.secrets_checksum is not None:
        annotations = {SECRETS_CHECKSUM_ANNOTATION: runtime.secrets_checksum}
    return k8s.meta.v1.ObjectMetaArgs(labels=dict(labels), annotations=annotations)


def object_meta(
    name: str, namespace: pulumi.Input[str], labels: Mapping[str, str], **extra
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels), **extra)
