"""The scheduler Job: enqueue a batch of tasks on demand (by default the 10,000 counter tasks).

Owns one Kubernetes Job per run id. No run id, no Job: a stack does not enqueue work just because
`pulumi up` ran. A new run id is a new Job (a new name and a new Pulumi resource), so setting
another id runs the batch again, exactly once. The same id is the same Job, and nothing else
makes it run again:

- a Job's pod template is immutable, so the provider would replace the Job (delete it, create it
  under the same name: all 10,000 tasks again) whenever the image digest, an environment value or
  the resources change. The Job ignores changes to its spec: a run keeps the spec it started with;
  a new run id picks up the current one.
- a finished Job stays (no TTL by default): had Kubernetes deleted it, `pulumi refresh` would drop
  it from the state and the next `pulumi up` would create it again. Clearing the run id deletes it.

Does not own what the tasks do (`app.scheduler`), nor recurring schedules (that would be Celery
beat or a CronJob).
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
    timeout_minutes,
    validate_object_name,
)
from infra.app_policies import network_policy_args, runtime_egress
from infra.resource_options import child_options
from infra.validation import check

SCHEDULER_APP_NAME = "scheduler"
JOB_IGNORED_INPUTS = ("spec",)
"""A run keeps the spec it started with (see the module docstring)."""
_RUN_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class SchedulerJobArgs:
    """Inputs for SchedulerJob. Without ``run_id`` nothing is created."""

    runtime: AppRuntimeArgs
    run_id: str | None = None
    """Names the run; set a new one to enqueue the batch again. Lowercase, digits, '-'."""
    arguments: tuple[str, ...] = ("count", "--n", "10000")
    """`python -m app.scheduler` arguments: the seed's 10,000 counter tasks by default."""
    backoff_limit: int = 2
    """Retries of a failed run. A retry starts the batch from the beginning, so it is low."""
    active_deadline_seconds: int = 1800
    ttl_seconds_after_finished: int | None = None
    """None (default): the finished Job and its logs stay until the run id changes or is cleared.
    A number makes Kubernetes delete it that long after it finished, and then `pulumi refresh`
    followed by `pulumi up` runs the batch again: set it only if you never refresh."""
    resources: ContainerResources = field(default_factory=ContainerResources)

    def __post_init__(self) -> None:
        owner = "SchedulerJobArgs"
        check(
            self.run_id is None or bool(_RUN_ID.match(self.run_id)),
            f"{owner}.run_id",
            self.run_id,
            "None or lowercase letters, digits and '-', at most 32 characters",
        )
        check(
            bool(self.arguments) and all(isinstance(a, str) and a for a in self.arguments),
            f"{owner}.arguments",
            self.arguments,
            "a non-empty tuple of strings, e.g. ('count', '--n', '10000')",
        )
        check(0 <= self.backoff_limit <= 10, f"{owner}.backoff_limit", self.backoff_limit, "0..10")
        check(
            60 <= self.active_deadline_seconds <= 86400,
            f"{owner}.active_deadline_seconds",
            self.active_deadline_seconds,
            "seconds in 60..86400",
        )
        check(
            self.ttl_seconds_after_finished is None
            or 60 <= self.ttl_seconds_after_finished <= 30 * 86400,
            f"{owner}.ttl_seconds_after_finished",
            self.ttl_seconds_after_finished,
            "None (keep the Job until the run id changes) or seconds in 60..2592000",
        )


def job_name(name: str, run_id: str) -> str:
    return f"{name}-{run_id}"


def scheduler_labels(name: str) -> dict[str, str]:
    return names.labels(SCHEDULER_APP_NAME, name, component="scheduler")


def scheduler_command(args: SchedulerJobArgs) -> list[str]:
    # --no-progress: a progress bar redraws one log line thousands of times.
    return ["python", "-m", "app.scheduler", "--no-progress", *args.arguments]


def job_args(name: str, args: SchedulerJobArgs) -> k8s.batch.v1.JobInitArgs | None:
    """Pure: the Job for ``args.run_id``, or None when no run is requested."""
    if args.run_id is None:
        return None
    labels = scheduler_labels(name)
    return k8s.batch.v1.JobInitArgs(
        metadata=object_meta(job_name(name, args.run_id), args.runtime.namespace, labels),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=args.backoff_limit,
            active_deadline_seconds=args.active_deadline_seconds,
            ttl_seconds_after_finished=args.ttl_seconds_after_finished,  # None: kept
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=app_pod_spec(
                    runtime=args.runtime,
                    containers=[
                        app_container(
                            name="scheduler",
                            runtime=args.runtime,
                            command=scheduler_command(args),
                            resources=args.resources,
                        )
                    ],
                    # Never: a failed pod stays for its logs; the Job's backoff makes new ones.
                    restart_policy="Never",
                ),
            ),
        ),
    )


def scheduler_network_policy_args(
    name: str, args: SchedulerJobArgs
) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """No ingress; egress to kube-dns, the broker (it publishes) and the database (LCS jobs and
    word-count documents are rows before they are tasks)."""
    return network_policy_args(
        name,
        args.runtime.namespace,
        scheduler_labels(name),
        names.selector_labels(SCHEDULER_APP_NAME, name),
        egress=runtime_egress(args.runtime),
    )


class SchedulerJob(pulumi.ComponentResource):
    """A run of `python -m app.scheduler ...` as a Job, created only when a run id is set."""

    job_name: pulumi.Output[str | None]
    """The Job's name (`kubectl logs job/<name>`), or None when no run is requested."""

    def __init__(
        self, name: str, args: SchedulerJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:scheduler:SchedulerJob", name, None, opts)
        # Room for "-<run id>" (33 characters) within a 63-character name.
        validate_object_name(name, "SchedulerJob name", max_length=30)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            scheduler_network_policy_args(name, args),
            opts=child_options(self, opts),
        )
        spec = job_args(name, args)
        if spec is None:
            self.job_name = pulumi.Output.from_input(None)
        else:
            job = k8s.batch.v1.Job(
                # The run id is part of the Pulumi name too: a new id is a new resource (create
                # the new Job, delete the old one), never an in-place update of an immutable Job,
                # and the new one gets the current spec (ignore_changes would carry the old spec
                # into a replacement of the same resource: the engine copies ignored inputs from
                # the old state before diffing, pulumi pkg/resource/deploy/step_generator.go
                # processIgnoreChanges).
                f"{name}-{args.run_id}",
                spec,
                opts=child_options(
                    self, opts,
                    delete_before_replace=True,
                    # A changed template (new image digest, env, resources) must not replace a
                    # Job that already ran: pulumi-kubernetes treats .spec.template of a Job as
                    # immutable (provider/pkg/provider/diff.go) and would re-run the batch.
                    ignore_changes=list(JOB_IGNORED_INPUTS),
                    # The provider waits for the Job to complete; give it the Job's own deadline.
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=timeout_minutes(args.active_deadline_seconds + 300)),
                ),
            )
            self.job_name = job.metadata.name
        self.register_outputs({"job_name": self.job_name})
