"""The worker Deployment of one pool: exec-form `celery worker` (PID 1 gets SIGTERM), the
soft-shutdown environment, the heartbeat-file liveness and startup probes, and the pool's
egress-only NetworkPolicy.

Pure builders over `WorkerPoolArgs`; registers nothing.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra import names
from infra.app_pod import (
    HEARTBEAT_FILE,
    HEARTBEAT_FILE_ENV,
    REMAP_SIGTERM_ENV,
    SOFT_SHUTDOWN_ENV,
    app_container,
    app_pod_spec,
    migrate_container,
    object_meta,
    pod_template_metadata,
)
from infra.app_policies import network_policy_args, runtime_egress
from infra.celery.args import WORKER_APP_NAME, WorkerPoolArgs
from infra.network_policy import Peer


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
                metadata=pod_template_metadata(labels, args.runtime),
                spec=app_pod_spec(
                    runtime=args.runtime,
                    containers=[worker_container(args)],
                    # Tasks write to the database: a worker never starts on an old schema.
                    init_containers=[migrate_container(args.runtime, args.migrate_resources)],
                    termination_grace_period_seconds=args.termination_grace_period_seconds,
                    topology_spread_selector=worker_selector(name),
                ),
            ),
        ),
    )


def worker_network_policy_args(
    name: str, args: WorkerPoolArgs
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Workers only call out; nothing may connect to them."""
    return network_policy_args(
        name, args.runtime.namespace, worker_labels(name), worker_selector(name),
        egress=worker_egress(args),
    )


def worker_egress(args: WorkerPoolArgs) -> tuple[Peer, ...]:
    """Everything a worker may send to: kube-dns, the broker, the database (task state, chord
    results, the `migrate` initContainer) and the blocks its tasks are configured to call."""
    return (*runtime_egress(args.runtime), *(rule.peer() for rule in args.allowed_egress))
