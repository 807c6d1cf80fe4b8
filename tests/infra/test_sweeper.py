"""The pending-job sweeper CronJob."""

from __future__ import annotations

import pytest

from infra.celery import AppRuntimeArgs, SecretKeyRef
from infra.sweeper import JobSweeper, JobSweeperArgs, cronjob_args
from infra.validation import ArgsError
from stacks import plan as plan_engine
from stacks.policy import pod_security_violations, resource_violations

RUNTIME = AppRuntimeArgs(namespace="ha-celery", image="ha-celery/app:1.0",
                         broker_url=SecretKeyRef(name="rabbitmq-broker", key="broker_url"))


def manifest(args: JobSweeperArgs) -> dict:
    graph = plan_engine.run_program(lambda: JobSweeper("job-sweeper", args))
    return next(m for m in graph.manifests() if m["kind"] == "CronJob")


def test_sweep_runs_on_schedule_one_at_a_time():
    spec = cronjob_args("job-sweeper", JobSweeperArgs(runtime=RUNTIME)).spec
    assert spec.schedule == "*/5 * * * *"
    assert spec.concurrency_policy == "Forbid"


def test_sweep_command_passes_the_age_threshold():
    cronjob = manifest(JobSweeperArgs(runtime=RUNTIME, older_than_seconds=300))
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][-3:] == ["sweep", "--older-than", "300"]
    env = {e["name"]: e for e in container["env"]}
    assert "valueFrom" in env["CELERY_BROKER_URL"]


def test_sweeper_pod_is_restricted_and_sized_and_schema_valid():
    cronjob = manifest(JobSweeperArgs(runtime=RUNTIME))
    assert pod_security_violations(cronjob) == []
    assert resource_violations(cronjob) == []
    assert plan_engine.validate_manifests([cronjob], "1.33") == []


def test_sweeper_accepts_no_ingress():
    graph = plan_engine.run_program(lambda: JobSweeper("job-sweeper", JobSweeperArgs(
        runtime=RUNTIME)))
    [policy] = [m for m in graph.manifests() if m["kind"] == "NetworkPolicy"]
    assert "Ingress" in policy["spec"]["policyTypes"]
    assert not policy["spec"].get("ingress")


@pytest.mark.parametrize("field, value", [("schedule", "every 5 minutes"),
                                          ("older_than_seconds", 5)])
def test_bad_sweeper_args_are_refused(field, value):
    with pytest.raises(ArgsError, match=f"JobSweeperArgs.{field}"):
        JobSweeperArgs(runtime=RUNTIME, **{field: value})
