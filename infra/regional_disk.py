"""A regional persistent disk for a single-replica database: its StorageClass and zone pinning.

Why: PostgreSQL is one pod. On a zonal disk a lost zone takes the data with it until the zone
returns or a restore from the backup bucket finishes (RPO about a minute, RTO the restore). A
regional persistent disk is written synchronously to two zones of the region (RPO 0 for the
disk): when the pod's zone fails, GKE's PD CSI driver force-attaches the disk in the other zone
and the pod starts there. The pod must be allowed in exactly those two zones (a node in a third
zone could never attach the disk), so the StorageClass's ``allowedTopologies`` and the pod's
required node affinity name the same two zones.

Owns: :class:`RegionalDisk` (the two zones and the disk type, validated), the StorageClass
builder and the node affinity builder. Pure functions: the PostgreSQL component registers the
StorageClass. Does not own the claim (``infra/stateful_storage.py``) or which workload uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_kubernetes as k8s

from infra.validation import check

PROVISIONER = "pd.csi.storage.gke.io"
"""GKE's Compute Engine persistent disk CSI driver (the in-tree plugin is gone)."""
ZONE_LABEL = "topology.kubernetes.io/zone"
"""The node label the pod's affinity matches (set on every GKE node)."""
CSI_ZONE_KEY = "topology.gke.io/zone"
"""The topology key the PD CSI driver reports, so ``allowedTopologies`` must use it."""
DISK_TYPES = ("pd-balanced", "pd-ssd")
"""Regional persistent disk types. Hyperdisk Balanced High Availability replicates too, but only
on machine series that support Hyperdisk (C3, N4, ...): the node pools here default to E2."""


@dataclass(frozen=True, kw_only=True)
class RegionalDisk:
    """Where a regional disk is replicated, and its type."""

    zones: tuple[str, str]
    """Exactly two zones of the stack's region: the disk's two replicas."""
    disk_type: str = "pd-ssd"
    """pd-ssd (the zonal ``premium-rwo`` class's type: same latency) or pd-balanced (cheaper)."""

    def __post_init__(self) -> None:
        check(
            len(self.zones) == 2 and len(set(self.zones)) == 2 and all(self.zones),
            "RegionalDisk.zones",
            self.zones,
            "two different zones of the stack's region (a regional disk has two replicas)",
        )
        regions = {zone.rsplit("-", 1)[0] for zone in self.zones}
        check(
            len(regions) == 1,
            "RegionalDisk.zones",
            self.zones,
            "two zones of one region (e.g. europe-west1-b and europe-west1-c)",
        )
        check(self.disk_type in DISK_TYPES, "RegionalDisk.disk_type", self.disk_type,
              f"one of {', '.join(DISK_TYPES)}")


def storage_class_args(name: str, disk: RegionalDisk,
                       labels: dict[str, str]) -> k8s.storage.v1.StorageClassInitArgs:
    """Pure: the StorageClass whose claims are regional disks in ``disk.zones``."""
    return k8s.storage.v1.StorageClassInitArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels),
        provisioner=PROVISIONER,
        parameters={"type": disk.disk_type, "replication-type": "regional-pd"},
        # The disk is created when the pod is scheduled, in the zones it may run in.
        volume_binding_mode="WaitForFirstConsumer",
        # storageSizeGib grows online, like GKE's own classes.
        allow_volume_expansion=True,
        # Retain: deleting or replacing the claim (a change of class) leaves the disk and its
        # data in the project until someone deletes it knowingly.
        reclaim_policy="Retain",
        allowed_topologies=[k8s.core.v1.TopologySelectorTermArgs(
            match_label_expressions=[k8s.core.v1.TopologySelectorLabelRequirementArgs(
                key=CSI_ZONE_KEY, values=list(disk.zones))],
        )],
    )


def node_affinity(disk: RegionalDisk) -> k8s.core.v1.AffinityArgs:
    """Pure: the pod runs only in the disk's two zones (the only ones that can attach it)."""
    return k8s.core.v1.AffinityArgs(
        node_affinity=k8s.core.v1.NodeAffinityArgs(
            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(
                    match_expressions=[k8s.core.v1.NodeSelectorRequirementArgs(
                        key=ZONE_LABEL, operator="In", values=list(disk.zones))],
                )],
            ),
        ),
    )
