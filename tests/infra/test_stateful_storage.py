"""Claims of a StatefulSet as resources of their own (the builders, without mocks)."""

from __future__ import annotations

import pulumi_kubernetes as k8s
import pytest

from infra.stateful_storage import STATEFULSET_IGNORED_INPUTS, claim_args, claim_name

TEMPLATE = k8s.core.v1.PersistentVolumeClaimArgs(
    metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
        access_modes=["ReadWriteOnce"], storage_class_name="premium-rwo",
        resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "50Gi"})))


def test_the_claim_carries_the_name_the_statefulset_controller_looks_for():
    # <template>-<statefulset>-<ordinal>: the controller adopts an existing claim by name.
    assert claim_name("data", "rabbitmq", 2) == "data-rabbitmq-2"
    claim = claim_args(TEMPLATE, statefulset="rabbitmq", ordinal=2, namespace="ha-celery",
                       labels={"app": "rabbitmq"})
    assert claim.metadata.name == "data-rabbitmq-2"
    assert claim.metadata.namespace == "ha-celery"


def test_the_claim_has_exactly_the_templates_spec():
    claim = claim_args(TEMPLATE, statefulset="rabbitmq", ordinal=0, namespace="ha-celery",
                       labels={})
    assert claim.spec is TEMPLATE.spec


def test_a_template_without_a_plain_name_is_refused():
    nameless = k8s.core.v1.PersistentVolumeClaimArgs(spec=TEMPLATE.spec)
    with pytest.raises(ValueError, match="rabbitmq: the volume claim template needs a plain name"):
        claim_args(nameless, statefulset="rabbitmq", ordinal=0, namespace="ns", labels={})


def test_the_statefulset_ignores_its_templates_after_creation():
    assert STATEFULSET_IGNORED_INPUTS == ("spec.volumeClaimTemplates",)
