"""The scheduler Job: only with a run id, named by it, bounded retries and lifetime."""

from __future__ import annotations

import pulumi
import pytest

from infra.scheduler import (
    SchedulerJob,
    SchedulerJobArgs,
    job_args,
    scheduler_network_policy_args,
)
from infra.validation import ArgsError
from tests.infra.test_celery_mock_harness import (
    Recorder,
    assert_resources,
    assert_restricted,
    assert_secrets_by_reference,
    assert_tmp_is_empty_dir,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
    runtime,
)


def test_no_run_id_means_no_job():
    assert job_args("scheduler", SchedulerJobArgs(runtime=runtime())) is None


def test_job_is_named_after_its_run_id():
    first = job_args("scheduler", SchedulerJobArgs(runtime=runtime(), run_id="2024-06-01"))
    second = job_args("scheduler", SchedulerJobArgs(runtime=runtime(), run_id="2024-06-02"))
    assert first.metadata.name == "scheduler-2024-06-01"
    assert second.metadata.name != first.metadata.name


def test_job_enqueues_the_seed_counter_tasks_by_default():
    job = job_args("scheduler", SchedulerJobArgs(runtime=runtime(), run_id="r1"))
    (container,) = job.spec.template.spec.containers
    assert container.command[:3] == ["python", "-m", "app.scheduler"]
    assert container.command[-3:] == ["count", "--n", "10000"]
    assert "--no-progress" in container.command


def test_job_has_bounded_retries_deadline_and_ttl():
    args = SchedulerJobArgs(
        runtime=runtime(), run_id="r1", backoff_limit=1, ttl_seconds_after_finished=3600
    )
    spec = job_args("scheduler", args).spec
    assert spec.backoff_limit == 1
    assert spec.ttl_seconds_after_finished == 3600
    assert spec.active_deadline_seconds > 0
    assert spec.template.spec.restart_policy == "Never"


def test_job_pod_is_restricted_with_resources_and_secret_references():
    spec = job_args("scheduler", SchedulerJobArgs(runtime=runtime(), run_id="r1")).spec
    assert_restricted(spec.template.spec)
    assert_resources(spec.template.spec)
    assert_secrets_by_reference(spec.template.spec)
    assert_tmp_is_empty_dir(spec.template.spec)


@pytest.mark.parametrize("run_id", ["Run1", "run_1", "-run", "x" * 33, ""])
def test_run_ids_that_cannot_name_a_job_are_refused(run_id):
    with pytest.raises(ArgsError, match="run_id"):
        SchedulerJobArgs(runtime=runtime(), run_id=run_id)


def test_scheduler_accepts_no_ingress():
    policy = scheduler_network_policy_args("scheduler", SchedulerJobArgs(runtime=runtime())).spec
    assert "Ingress" in policy.policy_types
    assert policy.ingress == []


@pulumi.runtime.test
def test_component_without_run_id_creates_no_job(recorder: Recorder):
    SchedulerJob("scheduler", SchedulerJobArgs(runtime=runtime()), opts=recorder.options())

    def check(resources):
        assert of_type(resources, ":Job") == []
        assert len(of_type(resources, ":NetworkPolicy")) == 1

    return recorder.settled(check)


@pulumi.runtime.test
def test_component_with_run_id_creates_one_job_replaced_not_updated(recorder: Recorder):
    args = SchedulerJobArgs(runtime=runtime(), run_id="nightly-7")
    SchedulerJob("scheduler", args, opts=recorder.options())

    def check(resources):
        (job,) = of_type(resources, ":Job")
        assert job.inputs["metadata"]["name"] == "scheduler-nightly-7"
        assert job.name.endswith("nightly-7")
        assert job.options.delete_before_replace is True
        # A new image digest or env must not replace (re-run) a Job that already ran.
        assert job.options.ignore_changes == ["spec"]
        # The provider awaits completion: the Job's own deadline plus a margin.
        assert job.options.custom_timeouts.create == "35m"

    return recorder.settled(check)


def test_a_finished_job_stays_so_a_refresh_never_runs_it_again():
    spec = job_args("scheduler", SchedulerJobArgs(runtime=runtime(), run_id="r1")).spec
    assert spec.ttl_seconds_after_finished is None


@pytest.mark.parametrize("ttl", [0, 59, 31 * 86400])
def test_a_ttl_out_of_range_is_refused_with_the_choices(ttl):
    with pytest.raises(ArgsError, match=r"None \(keep the Job until the run id changes\) or"):
        SchedulerJobArgs(runtime=runtime(), run_id="r1", ttl_seconds_after_finished=ttl)
