"""The platform namespace: restricted Pod Security, protection, and a delete that can finish."""

from __future__ import annotations

import pytest

from infra.namespace import (
    NEG_CLEANUP_SECONDS,
    PlatformNamespace,
    PlatformNamespaceArgs,
    delete_timeout,
    namespace_metadata,
)
from infra.validation import ArgsError
from stacks import plan as plan_engine


def test_pods_that_are_not_restricted_are_rejected():
    labels = namespace_metadata(PlatformNamespaceArgs()).labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("grace, expected", [(30, "16m"), (1800, "45m"), (0, "15m")])
def test_the_delete_waits_for_the_longest_grace_and_the_neg_cleanup(grace, expected):
    args = PlatformNamespaceArgs(longest_termination_grace_seconds=grace)
    assert delete_timeout(args) == expected
    assert int(expected[:-1]) * 60 >= grace + NEG_CLEANUP_SECONDS


def test_a_bad_grace_is_refused_with_the_range():
    with pytest.raises(ArgsError, match=r"seconds in 0\.\.86400"):
        PlatformNamespaceArgs(longest_termination_grace_seconds=-1)


def test_the_namespace_is_protected_by_default_and_records_its_delete_timeout():
    plan = plan_engine.run_program(lambda: PlatformNamespace("platform", PlatformNamespaceArgs(
        longest_termination_grace_seconds=900)))
    [namespace] = plan.of_type("kubernetes:core/v1:Namespace")
    assert namespace.options["protect"] is True
    assert namespace.options["customTimeouts"] == {"delete": "30m"}
