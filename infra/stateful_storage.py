"""The volumes of a StatefulSet as resources of their own, so that growing them is an in-place
expansion instead of a new StatefulSet.

A StatefulSet's ``volumeClaimTemplates`` are immutable: Kubernetes refuses to update them and
the pulumi-kubernetes provider plans a replacement for any change (provider/pkg/provider/
diff.go, StatefulSet ``.spec.volumeClaimTemplates``): every pod is deleted at once, and the
retained claims come back at their old size. So each claim the StatefulSet would create,
``<template>-<statefulset>-<ordinal>``, is created by the program first, with the template's
spec; the StatefulSet controller adopts a claim that already exists under that name. The
StatefulSet then ignores its templates after creation (a new size or class would otherwise
replace it), and the size lives on the claims: a bigger one is an update that the volume's
CSI driver applies online (the StorageClass must allow volume expansion, as GKE's
``standard-rwo`` and ``premium-rwo`` do). Kubernetes refuses to shrink a claim; a new
StorageClass replaces the claim, which the change review marks as data at risk and protection
refuses.

Owns no component; the RabbitMQ and PostgreSQL components use these builders.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

STATEFULSET_IGNORED_INPUTS = ("spec.volumeClaimTemplates",)
"""What a StatefulSet with claims of its own ignores after creation."""


def claim_name(template: str, statefulset: str, ordinal: int) -> str:
    """The name the StatefulSet controller gives the claim of pod ``ordinal``."""
    return f"{template}-{statefulset}-{ordinal}"


def claim_args(
    template: k8s.core.v1.PersistentVolumeClaimArgs,
    *,
    statefulset: str,
    ordinal: int,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
) -> k8s.core.v1.PersistentVolumeClaimInitArgs:
    """Pure: the claim of one pod, with the template's spec, under the controller's name."""
    template_name = template.metadata.name if template.metadata is not None else None
    if not isinstance(template_name, str) or not template_name:
        raise ValueError(f"{statefulset}: the volume claim template needs a plain name")
    return k8s.core.v1.PersistentVolumeClaimInitArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=claim_name(template_name, statefulset, ordinal),
            namespace=namespace,
            labels=dict(labels),
        ),
        spec=template.spec,
    )


__all__ = ["STATEFULSET_IGNORED_INPUTS", "claim_args", "claim_name"]
