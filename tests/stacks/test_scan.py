"""The third-party scan: checkov over every stack's manifests and translated GCP resources.

The translation is tested on its own (snake case, blocks as lists, maps kept, pluralised block
names), then checkov runs for real: every finding on every stack is justified in
``stacks/scan_skips.yaml`` and every justification still matches a finding; a deliberately weak
manifest and a public bucket are caught, so the scan can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks import scan

pytestmark = pytest.mark.timeout(600)


def test_pulumi_inputs_become_terraform_plan_values() -> None:
    inputs = {
        "ipCidrRange": "10.0.0.0/20",
        "secondaryIpRanges": [{"rangeName": "pods", "ipCidrRange": "10.16.0.0/14"}],
        "logConfig": {"flowSampling": 0.5},
        "resourceLabels": {"platform": "ha-celery", "someKey": "v"},
        "nodeConfig": {"metadata": {"disable-legacy-endpoints": "true"}, "tags": ["a"]},
    }
    assert scan.terraform_values(inputs) == {
        "ip_cidr_range": "10.0.0.0/20",
        "secondary_ip_range": [{"range_name": "pods", "ip_cidr_range": "10.16.0.0/14"}],
        "log_config": [{"flow_sampling": 0.5}],
        "resource_labels": {"platform": "ha-celery", "someKey": "v"},
        "node_config": [{"metadata": {"disable-legacy-endpoints": "true"}, "tags": ["a"]}],
    }


def test_a_gcp_type_without_a_terraform_twin_is_reported_not_skipped() -> None:
    document, untranslated = scan.terraform_plan(
        [
            {"type": "gcp:storage/bucket:Bucket", "name": "b", "inputs": {"name": "b"}},
            {"type": "gcp:pubsub/topic:Topic", "name": "t", "inputs": {}},
            {"type": "kubernetes:core/v1:Service", "name": "s", "inputs": {}},
        ]
    )
    assert untranslated == ["gcp:pubsub/topic:Topic"]
    [bucket] = document["planned_values"]["root_module"]["resources"]
    assert (
        bucket["type"] == "google_storage_bucket" and bucket["address"] == "google_storage_bucket.b"
    )


def test_a_justification_needs_a_reason_and_known_stacks(tmp_path: Path) -> None:
    skips = tmp_path / "skips.yaml"
    skips.write_text("- check: CKV_K8S_11\n  resources: ['*']\n")
    with pytest.raises(ValueError, match="entry 1: missing reason"):
        scan.load_skips(skips)
    skips.write_text("- check: X\n  resources: ['*']\n  reason: r\n  stacks: [staging]\n")
    with pytest.raises(ValueError, match=r"unknown stacks \['staging'\]"):
        scan.load_skips(skips)


def test_a_justification_holds_only_for_its_stacks_and_resources() -> None:
    skip = scan.Skip("CKV_K8S_43", ("Deployment.*.web",), "why", ("local",))
    assert skip.matches(scan.Finding("local", "CKV_K8S_43", "", "Deployment.ha-celery.web"))
    assert not skip.matches(scan.Finding("prod", "CKV_K8S_43", "", "Deployment.ha-celery.web"))
    assert not skip.matches(scan.Finding("local", "CKV_K8S_43", "", "Deployment.ha-celery.x"))


needs_checkov = pytest.mark.skipif(
    not scan.CHECKOV.exists(), reason="run scripts/prereq.d/60-checkov.sh (./run test does)"
)


@needs_checkov
def test_every_finding_on_every_stack_is_justified_and_every_justification_is_used() -> None:
    skips = scan.load_skips()
    result = scan.scan_stacks()
    assert result.untranslated == []
    assert [str(f) for f in result.unjustified(skips)] == []
    assert [f"{s.check} {s.resources}" for s in result.stale(skips)] == []
    # The GCP side was really scanned (a translated plan produces findings of its own).
    assert any(f.resource.startswith("google_") for f in result.findings)


@needs_checkov
def test_the_scan_catches_a_weak_pod_and_a_public_bucket(tmp_path: Path) -> None:
    weak_pod = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "careless", "namespace": "ha-celery"},
        "spec": {
            "selector": {"matchLabels": {"app": "c"}},
            "template": {
                "metadata": {"labels": {"app": "c"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox:1.36",
                            "securityContext": {"privileged": True},
                        }
                    ]
                },
            },
        },
    }
    public_bucket = {
        "type": "gcp:storage/bucket:Bucket",
        "name": "open",
        "inputs": {"name": "open", "location": "EU", "uniformBucketLevelAccess": False},
    }
    result = scan.scan_plan("dev", [public_bucket], [weak_pod], tmp_path)
    unjustified = {(f.check, f.resource) for f in result.unjustified(scan.load_skips())}
    assert ("CKV_K8S_16", "Deployment.ha-celery.careless") in unjustified  # privileged
    assert ("CKV_GCP_29", "google_storage_bucket.open") in unjustified  # uniform access


def test_the_readme_threat_table_justifies_every_accepted_finding() -> None:
    """Each check of the skip list has its row (with the residual risk) in the README."""
    from tests.test_readme import section

    text = section("Threats and controls")
    rows = {line.split("|")[1].strip().split(" ")[0] for line in text.splitlines()
            if line.startswith("| CKV_")}
    assert {skip.check for skip in scan.load_skips()} == rows
