"""The pending-job sweeper: a CronJob that re-publishes LCS jobs whose publish never landed.

The web app writes a job row, then publishes its task. If the web pod dies between the two (a
node drain, an OOM kill), the row stays `pending` and no task exists: the job would wait forever.
Every few minutes this CronJob runs `python -m app.scheduler sweep`, which publishes such jobs
again; the task is idempotent per job id, so a job that was in fact published runs only once.

Owns the CronJob and its egress-only NetworkPolicy. Does not own the sweep logic (`app/`).
"""

from __future__ import annotations

import re
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
)
from infra.app_policies import network_policy_args, runtime_egress
from infra.resource_options import child_options
from infra.validation import check

SWEEPER_APP_NAME = "job-sweeper"
_SCHEDULE = re.compile(r"^(\S+\s+){4}\S+$")


@dataclass(frozen=True, kw_only=True)
class JobSweeperArgs:
    """Inputs for JobSweeper. Only ``runtime`` is required."""

    runtime: AppRuntimeArgs
    schedule: str = "*/5 * * * *"
    """Cron schedule: every five minutes bounds how long a stranded job waits."""
    older_than_seconds: int = 120
    """Only jobs pending at least this long: a job published a second ago is not stranded."""
    resources: ContainerResources = field(default_factory=ContainerResources)

    def __post_init__(self) -> None:
        check(bool(_SCHEDULE.match(self.schedule)), "JobSweeperArgs.schedule", self.schedule,
              "a five-field cron schedule, e.g. '*/5 * * * *'")
        check(30 <= self.older_than_seconds <= 86400, "JobSweeperArgs.older_than_seconds",
              self.older_than_seconds, "seconds in 30..86400")


def sweeper_labels(name: str) -> dict[str, str]:
    return names.labels(SWEEPER_APP_NAME, name, component="job-sweeper")


def cronjob_args(name: str, args: JobSweeperArgs) -> k8s.batch.v1.CronJobInitArgs:
    """Pure: the CronJob that runs one sweep per schedule tick."""
    labels = sweeper_labels(name)
    return k8s.batch.v1.CronJobInitArgs(
        metadata=object_meta(name, args.runtime.namespace, labels),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=args.schedule,
            # Forbid: two sweeps at once would race to publish the same stranded job (harmless,
            # the task is idempotent, but wasteful).
            concurrency_policy="Forbid",
            starting_deadline_seconds=120,
            successful_jobs_history_limit=1,
            failed_jobs_history_limit=3,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=1,
                    active_deadline_seconds=240,
                    ttl_seconds_after_finished=3600,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                        spec=app_pod_spec(
                            runtime=args.runtime,
                            containers=[app_container(
                                name="sweep",
                                runtime=args.runtime,
                                command=["python", "-m", "app.scheduler", "--no-progress",
                                         "sweep", "--older-than",
                                         str(args.older_than_seconds)],
                                resources=args.resources,
                            )],
                            restart_policy="Never",
                        ),
                    ),
                ),
            ),
        ),
    )


class JobSweeper(pulumi.ComponentResource):
    """Re-publishes stranded `pending` jobs on a schedule."""

    cronjob_name: pulumi.Output[str]
    """The CronJob's name (`kubectl get jobs -l app.kubernetes.io/name=job-sweeper`)."""

    def __init__(self, name: str, args: JobSweeperArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:sweeper:JobSweeper", name, None, opts)
        child = child_options(self, opts)
        # Egress only: it reads stranded rows from the database and publishes them to the
        # broker (plus kube-dns); nothing talks to it.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            network_policy_args(name, args.runtime.namespace, sweeper_labels(name),
                                names.selector_labels(SWEEPER_APP_NAME, name),
                                egress=runtime_egress(args.runtime)),
            opts=child,
        )
        cronjob = k8s.batch.v1.CronJob(f"{name}-cronjob", cronjob_args(name, args), opts=child)
        self.cronjob_name = cronjob.metadata.name
        self.register_outputs({"cronjob_name": self.cronjob_name})
