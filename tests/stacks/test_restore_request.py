"""The restore key lives outside the cluster: on every stack by default no object holds it, and a
restore requested through config brings the key Secret, a new volume and a Job only while it is
requested."""

from __future__ import annotations

import pytest

from infra.backup_restore import RestoreRequest
from infra.validation import ArgsError
from stacks import plan as plan_engine
from stacks.config import ConfigError
from stacks.plan import compare
from stacks.policy.pack import check_manifest

REQUEST = {"runId": "2030-01-01", "targetTime": "2030-01-01T12:00:00+00:00"}


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_by_default_no_object_in_the_cluster_holds_the_private_key(plans, stack):
    plan = plans[stack]
    assert [m["metadata"]["name"] for m in plan.kinds("Secret")
            if "restore" in m["metadata"]["name"]] == []
    assert plan.kinds("Job") == [] or all(
        "restore" not in job["metadata"]["name"] for job in plan.kinds("Job"))
    for resource in plan.resources:
        if resource.type.startswith("kubernetes:"):
            # The PrivateKey's output is the only thing that could carry it.
            assert "privateKeyPem" not in str(resource.to_json()["inputs"])
    # It is a secret stack output: `pulumi stack output --show-secrets backup_restore_key`.
    assert "backup_restore_key" in plan.outputs


@pytest.fixture(scope="module")
def restoring():
    return {stack: plan_engine.evaluate(stack, overrides={"backup.restore": REQUEST})
            for stack in ("prod", "local")}


@pytest.mark.parametrize("stack", ["prod", "local"])
def test_a_requested_restore_has_its_key_volume_job_and_policy(restoring, stack):
    plan = restoring[stack]
    job = plan.manifest("Job", "backup-restore-2030-01-01")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][-2:] == ["--recovery-target-time", REQUEST["targetTime"]]
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    key = plan.manifest("Secret", "backup-restore-key")
    assert key["stringData"] == {"private-key.pem": "[secret]"}
    claim = plan.manifest("PersistentVolumeClaim", "backup-restore-2030-01-01")
    size = "100Gi" if stack == "prod" else "4Gi"  # the database volume's size
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    policy = plan.manifest("NetworkPolicy", "backup-restore-2030-01-01")
    destinations = [peer for rule in policy["spec"]["egress"] for peer in rule["to"]]
    # Never the live database.
    assert not any("postgres" in str(peer) for peer in destinations)
    assert check_manifest(job, plan.kubernetes_version) == []
    assert check_manifest(job, "1.37") == []


def test_the_restored_volume_outlives_the_request_and_the_key_leaves(restoring, prod):
    review = compare.review([r.to_json() for r in restoring["prod"].resources],
                            [r.to_json() for r in prod.resources])
    actions = {(c.type.rsplit(":", 1)[-1], c.name): c.action for c in review.changes}
    assert actions[("Secret", "backup-restore-key")] == "delete"
    assert actions[("Job", "backup-restore-2030-01-01-job")] == "delete"
    claim = [r for r in restoring["prod"].resources
             if r.name == "backup-restore-2030-01-01" and r.type.endswith("PersistentVolumeClaim")]
    assert claim[0].options["retainOnDelete"] is True


@pytest.mark.parametrize(("request_", "field"), [
    ({"run_id": "Run 1"}, "run_id"),
    ({"run_id": "r1", "target_time": "yesterday"}, "target_time"),
    ({"run_id": "r1", "target_time": "2030-01-01T12:00:00"}, "target_time"),
    ({"run_id": "r1", "storage_size_gib": 0}, "storage_size_gib"),
])
def test_a_bad_restore_request_names_its_field(request_, field):
    with pytest.raises(ArgsError, match=rf"RestoreRequest\.{field}"):
        RestoreRequest(**request_)


def test_a_bad_restore_setting_is_named_by_its_key():
    with pytest.raises(ConfigError) as error:
        plan_engine.evaluate("prod", overrides={"backup.restore": {"runId": "r1",
                                                                   "targetTime": "noon"}})
    assert any(problem.startswith("ha-celery:backup.restore.targetTime: got 'noon'")
               for problem in error.value.problems), error.value.problems
