"""The offline engine's command line: files written, exit codes, secrets never written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from stacks import plan as plan_engine
from stacks import platform

ROOT = Path(__file__).resolve().parents[2]


def test_prod_plan_writes_resources_json_and_manifests(tmp_path):
    assert plan_engine.main(["--stack", "prod", "--out", str(tmp_path), "--quiet"]) == 0
    resources = json.loads((tmp_path / "resources.json").read_text())
    assert resources and all(
        set(r) == {"urn", "type", "name", "parent", "provider", "options", "inputs",
                   "secretDigests"} for r in resources)
    types = {r["type"] for r in resources}
    assert "gcp:container/cluster:Cluster" in types
    manifests = list((tmp_path / "manifests").glob("*.yaml"))
    assert manifests
    for path in manifests:
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] and document["kind"] and document["metadata"]["name"]


def test_plan_prints_the_tree_indented_by_parent(capsys, tmp_path):
    assert plan_engine.main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cluster = next(line for line in lines if "gcp:container/cluster:Cluster" in line)
    component = next(line for line in lines if "hacelery:gke:GkeCluster" in line)
    indent = lambda line: len(line) - len(line.lstrip())  # noqa: E731
    assert indent(cluster) == indent(component) + 4


def test_secrets_never_reach_the_written_files(tmp_path):
    assert plan_engine.main(["--stack", "prod", "--out", str(tmp_path), "--quiet"]) == 0
    written = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert plan_engine.SECRET_PLACEHOLDER_PREFIX not in written
    # The kubeconfig (carries the cluster CA) reaches the provider only as a secret.
    providers = [r for r in json.loads((tmp_path / "resources.json").read_text())
                 if r["type"] == "pulumi:providers:kubernetes"]
    assert [p["inputs"]["kubeconfig"] for p in providers] == ["[secret]"]
    assert "UExBTi1DQQ==" not in written


def test_bad_config_exits_2_naming_the_key(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project)
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["gcp:region"] = "europe-west"
    (project / "Pulumi.bad.yaml").write_text(yaml.safe_dump(stack))
    result = subprocess.run(
        [sys.executable, "-m", "stacks.plan", "--stack", "bad", "--project-dir", str(project),
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "gcp:region: got 'europe-west'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_stack_exits_2_listing_known_stacks(capsys):
    assert plan_engine.main(["--stack", "nope", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "Pulumi.nope.yaml" in error and "dev" in error and "prod" in error


def test_invalid_manifest_exits_3_with_the_problem(monkeypatch, tmp_path, capsys):
    real_build = platform.build

    def build_with_a_bad_pod(config):
        outputs = real_build(config)
        k8s.apps.v1.Deployment(
            "careless",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="careless", namespace=config.namespace),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app": "careless"}),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={"app": "careless"}),
                    spec=k8s.core.v1.PodSpecArgs(containers=[
                        k8s.core.v1.ContainerArgs(name="main", image="busybox:1.36")]))),
            opts=pulumi.ResourceOptions(provider=None))
        return outputs

    monkeypatch.setattr(platform, "build", build_with_a_bad_pod)
    assert plan_engine.main(["--stack", "local", "--out", str(tmp_path), "--quiet"]) == 3
    error = capsys.readouterr().err
    assert "Deployment/ha-celery/careless" in error
    assert "pod-security: allowPrivilegeEscalation (Privilege Escalation)" in error
    assert "set resources requests.cpu" in error


def test_schema_errors_are_reported_per_manifest():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"ports": [{"port": "eighty"}], "typo": True}}
    problems = plan_engine.validate_manifests([bad], "1.33")
    assert problems and all(p.manifest == "Service/x" for p in problems)
    assert any("schema" in p.message for p in problems)


def test_custom_resources_are_checked_against_the_bundled_schemas():
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
              "metadata": {"name": "w", "namespace": "ha-celery"},
              "spec": {"scaleTargetRef": {"name": "w"}, "minReplicaCount": 1,
                       "triggers": [{"type": "rabbitmq", "metadata": {"value": 20}}]}}
    [problem] = plan_engine.validate_manifests([scaled], "1.33")
    assert "triggers/0/metadata/value" in problem.message  # KEDA wants strings
    scaled["spec"]["triggers"][0]["metadata"]["value"] = "20"
    assert plan_engine.validate_manifests([scaled], "1.33") == []


def test_custom_resource_without_a_schema_is_an_error():
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    [problem] = plan_engine.validate_manifests([unknown], "1.33")
    assert "no bundled schema stacks/schemas/example.com/v1/widget.yaml" in problem.message


# --- the change review (--compare) --------------------------------------------------------------

def project_copy(tmp_path: Path, stack: str, edit=None) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", project)
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    if edit is not None:
        edit(document["config"])
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return project


def test_a_second_plan_of_the_same_config_compares_as_zero_changes(tmp_path, capsys):
    out = tmp_path / "plan"
    assert plan_engine.main(["--stack", "prod", "--out", str(out), "--quiet"]) == 0
    # DIR may be the output directory itself: it is read before the new plan overwrites it.
    assert plan_engine.main(["--stack", "prod", "--out", str(out), "--quiet",
                             "--compare", str(out)]) == 0
    output = capsys.readouterr().out
    assert "no changes: `pulumi up` would leave every resource as it is" in output
    assert json.loads((out / "changes.json").read_text())["changes"] == []


def test_a_risky_change_stops_the_review_until_it_is_accepted(tmp_path, capsys):
    before = tmp_path / "before"
    assert plan_engine.main(["--stack", "local", "--out", str(before), "--quiet"]) == 0

    def rename_namespace(config):
        config["ha-celery:namespace"] = "celery-two"

    project = project_copy(tmp_path, "local", rename_namespace)
    args = ["--stack", "local", "--out", str(tmp_path / "after"), "--quiet",
            "--project-dir", str(project), "--compare", str(before)]
    assert plan_engine.main(args) == 4
    output = capsys.readouterr().out
    assert "replace  kubernetes:core/v1:Namespace  platform-namespace  [DATA AT RISK, OUTAGE]" \
        in output
    assert "error:" in output and "--accept-risk" in output
    assert plan_engine.main([*args, "--accept-risk"]) == 0
    assert "accepted:" in capsys.readouterr().out


def test_compare_with_a_directory_that_holds_no_plan_exits_2_with_the_fix(tmp_path, capsys):
    assert plan_engine.main(["--stack", "local", "--out", str(tmp_path / "out"), "--quiet",
                             "--compare", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert "no resources.json there" in error and "./run plan STACK --out" in error
    assert not (tmp_path / "out").exists()


def test_compare_refuses_a_plan_of_another_stack(tmp_path, capsys):
    assert plan_engine.main(["--stack", "local", "--out", str(tmp_path / "local"),
                             "--quiet"]) == 0
    assert plan_engine.main(["--stack", "dev", "--out", str(tmp_path / "dev"), "--quiet",
                             "--compare", str(tmp_path / "local")]) == 2
    assert "holds a plan of stack 'local', not 'dev'" in capsys.readouterr().err


def test_accept_risk_without_compare_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        plan_engine.main(["--stack", "local", "--accept-risk"])
    assert exit_info.value.code == 2
    assert "--accept-risk only applies to --compare DIR" in capsys.readouterr().err
