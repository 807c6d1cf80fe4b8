"""PostgreSQL on a regional persistent disk: the StorageClass, the zone constraint, the config
checks and what the change review says about moving an existing database onto it."""

from __future__ import annotations

import pytest

from infra.regional_disk import CSI_ZONE_KEY, PROVISIONER, ZONE_LABEL
from stacks.plan import compare, evaluate
from tests.stacks.test_config import GCP, LOCAL, problems_of


def _claim(plan):
    return plan.manifest("PersistentVolumeClaim", "data-postgres-0")


def _pod_zones(plan) -> list[str]:
    spec = plan.manifest("StatefulSet", "postgres")["spec"]["template"]["spec"]
    [term] = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    [requirement] = term["matchExpressions"]
    assert (requirement["key"], requirement["operator"]) == (ZONE_LABEL, "In")
    return requirement["values"]


def test_prod_database_is_on_a_regional_disk_in_two_of_the_stacks_zones(prod):
    claim = _claim(prod)
    storage_class = prod.manifest("StorageClass", claim["spec"]["storageClassName"])
    assert storage_class["provisioner"] == PROVISIONER
    assert storage_class["parameters"] == {"type": "pd-ssd", "replication-type": "regional-pd"}
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["allowVolumeExpansion"] is True
    [topology] = storage_class["allowedTopologies"]
    [expression] = topology["matchLabelExpressions"]
    assert expression["key"] == CSI_ZONE_KEY
    zones = expression["values"]
    # The first two of prod's ha-celery:zones (europe-west1-b, -c, -d) by default.
    assert zones == ["europe-west1-b", "europe-west1-c"]
    # The pod may run exactly where the disk can attach.
    assert _pod_zones(prod) == zones


def test_dev_stays_zonal_by_config_and_local_has_no_storage_class(dev, local):
    assert _claim(dev)["spec"]["storageClassName"] == "standard-rwo"
    for plan in (dev, local):
        assert plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass") == []
        spec = plan.manifest("StatefulSet", "postgres")["spec"]["template"]["spec"]
        assert "affinity" not in spec


def test_disk_zones_and_type_are_settings():
    plan = evaluate("prod", overrides={
        "postgres.diskZones": ["europe-west1-c", "europe-west1-d"],
        "postgres.diskType": "pd-balanced"})
    claim = _claim(plan)
    storage_class = plan.manifest("StorageClass", claim["spec"]["storageClassName"])
    assert storage_class["parameters"]["type"] == "pd-balanced"
    assert _pod_zones(plan) == ["europe-west1-c", "europe-west1-d"]


@pytest.mark.parametrize(
    ("settings", "key", "words"),
    [
        ({"zones": ["europe-west1-b"]}, "ha-celery:postgres.regionalDisk",
         "at least two zones in ha-celery:zones"),
        ({"postgres": {"diskZones": ["europe-west1-b", "us-central1-a"]}},
         "ha-celery:postgres.diskZones", "two different zones of the stack's zones"),
        ({"postgres": {"diskZones": ["europe-west1-b"]}},
         "ha-celery:postgres.diskZones", "two different zones"),
        ({"postgres": {"diskZones": ["europe-west1-b", "europe-west1-b"]}},
         "ha-celery:postgres.diskZones", "two different zones"),
        ({"postgres": {"storageClass": "premium-rwo"}},
         "ha-celery:postgres.storageClass", "regionalDisk: false"),
        ({"postgres": {"diskType": "pd-standard"}},
         "ha-celery:postgres.diskType", "pd-balanced, pd-ssd"),
    ],
)
def test_a_regional_disk_that_cannot_work_stops_the_plan_naming_the_key(settings, key, words):
    problems = problems_of({**GCP, **settings})
    assert any(p.startswith(f"{key}:") and words in p for p in problems), problems


def test_a_regional_disk_on_a_local_stack_is_refused_naming_the_key():
    problems = problems_of({**LOCAL, "postgres": {"regionalDisk": True}})
    assert any(p.startswith("ha-celery:postgres.regionalDisk:") and "GCP only" in p
               for p in problems), problems


def test_moving_an_existing_database_onto_the_regional_disk_is_flagged_as_data_loss():
    before = [r.to_json() for r in evaluate("prod", overrides={
        "postgres.regionalDisk": False, "postgres.storageClass": "premium-rwo"}).resources]
    after = [r.to_json() for r in evaluate("prod").resources]
    result = compare.review(before, after)
    [claim] = [c for c in result.changes
               if c.type == "kubernetes:core/v1:PersistentVolumeClaim"]
    assert claim.action == "replace"
    assert compare.DATA_AT_RISK in claim.risk_kinds
    assert any("restoring the latest backup" in risk.reason for risk in claim.risks
               if risk.kind == compare.DATA_AT_RISK)
    assert result.exit_code(accept_risk=False) != 0
