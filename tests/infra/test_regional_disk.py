"""The regional disk's builders, without mocks: two zones of one region, the CSI topology key."""

from __future__ import annotations

import pytest

from infra.regional_disk import CSI_ZONE_KEY, RegionalDisk, node_affinity, storage_class_args
from infra.validation import ArgsError


@pytest.mark.parametrize(
    "zones",
    [("europe-west1-b",), ("europe-west1-b", "europe-west1-b"), ("europe-west1-b", "us-east1-b")],
)
def test_a_regional_disk_needs_two_different_zones_of_one_region(zones) -> None:
    with pytest.raises(ArgsError, match=r"RegionalDisk\.zones"):
        RegionalDisk(zones=zones)


def test_the_storage_class_and_the_pod_name_the_same_two_zones() -> None:
    disk = RegionalDisk(zones=("europe-west1-b", "europe-west1-d"), disk_type="pd-balanced")
    storage_class = storage_class_args("db", disk, {})
    assert storage_class.parameters == {"type": "pd-balanced", "replication-type": "regional-pd"}
    assert storage_class.reclaim_policy == "Retain"
    [term] = storage_class.allowed_topologies
    [requirement] = term.match_label_expressions
    assert (requirement.key, requirement.values) == (CSI_ZONE_KEY, list(disk.zones))
    node = node_affinity(disk).node_affinity.required_during_scheduling_ignored_during_execution
    [selector] = node.node_selector_terms
    assert selector.match_expressions[0].values == list(disk.zones)
