"""What the plan writes for a reviewer: every resource's options, stable bytes, secret digests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from stacks import plan as plan_engine

ROOT = Path(__file__).resolve().parents[2]


def resources_by_name(out: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads((out / "resources.json").read_text())}


def test_resources_json_records_every_option_the_engine_acts_on(tmp_path):
    assert plan_engine.main(["--stack", "prod", "--out", str(tmp_path), "--quiet"]) == 0
    resources = resources_by_name(tmp_path)
    assert all(set(r["options"]) == set(plan_engine.OPTION_KEYS) for r in resources.values())
    bucket = resources["backup-bucket"]["options"]
    assert bucket["protect"] is True
    statefulset = resources["rabbitmq-statefulset"]["options"]
    assert statefulset["customTimeouts"]["create"] == "20m"
    # Explicit dependencies are URNs of resources that exist in the same plan, sorted.
    depends_on = statefulset["dependsOn"]
    assert depends_on == sorted(depends_on)
    urns = {r["urn"] for r in resources.values()}
    assert depends_on and set(depends_on) <= urns
    assert any(urn.endswith("::rabbitmq-config") for urn in depends_on)
    # A resource registered without options records the defaults, not a missing key.
    assert resources["gke-router"]["options"] == plan_engine.default_options()


def test_scheduler_job_records_delete_before_replace_and_ignored_fields():
    plan = plan_engine.evaluate("dev", overrides={"scheduler": {"runId": "first"}})
    [job] = plan.of_type("kubernetes:batch/v1:Job")
    assert job.options["deleteBeforeReplace"] is True


def test_two_plans_of_one_config_write_the_same_bytes(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert plan_engine.main(["--stack", "prod", "--out", str(first), "--quiet"]) == 0
    assert plan_engine.main(["--stack", "prod", "--out", str(second), "--quiet"]) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_manifests_start_with_api_version_kind_and_metadata(tmp_path):
    assert plan_engine.main(["--stack", "local", "--out", str(tmp_path), "--quiet"]) == 0
    text = (tmp_path / "manifests" / "ha-celery_statefulset_rabbitmq.yaml").read_text()
    assert list(yaml.safe_load(text))[:3] == ["apiVersion", "kind", "metadata"]
    assert text.startswith("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n")


def test_a_new_secret_value_changes_its_digest_and_never_its_text(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project)
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    digests = []
    for ciphertext in ("v1:AAAAfirst", "v1:AAAAsecond"):
        stack["config"]["ha-celery:appSecrets"] = {"SENTRY_DSN": {"secure": ciphertext}}
        (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
        out = tmp_path / ciphertext.split(":")[1]
        assert plan_engine.main(["--stack", "dev", "--out", str(out), "--quiet",
                                 "--project-dir", str(project)]) == 0
        written = (out / "resources.json").read_text()
        assert plan_engine.SECRET_PLACEHOLDER_PREFIX not in written
        secret = resources_by_name(out)["app-secrets-secret"]
        assert secret["inputs"]["stringData"] == {"SENTRY_DSN": "[secret]"}
        digests.append(secret["secretDigests"]["stringData.SENTRY_DSN"])
    assert digests[0] != digests[1]
