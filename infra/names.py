"""Names and labels for every Kubernetes object the platform creates.

Owns the `app.kubernetes.io/*` label set and the small, stable subset used in selectors, so no
label key is spelled twice in the tree. Selectors must never change for a running workload
(Kubernetes rejects a new Deployment/StatefulSet selector), which is why they carry only `name`
and `instance`, never a version.

Does not own resource *names* inside Pulumi (components derive those from their own name).
"""

from __future__ import annotations

PART_OF = "ha-celery"
MANAGED_BY = "pulumi"

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
VERSION = "app.kubernetes.io/version"
PART_OF_KEY = "app.kubernetes.io/part-of"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"


def selector_labels(name: str, instance: str) -> dict[str, str]:
    """The minimal, immutable label subset that Services, PDBs and selectors match on."""
    return {NAME: name, INSTANCE: instance}


def labels(
    name: str, instance: str, *, component: str | None = None, version: str | None = None
) -> dict[str, str]:
    """Full recommended label set for an object's metadata and its pod template."""
    result = {**selector_labels(name, instance), PART_OF_KEY: PART_OF, MANAGED_BY_KEY: MANAGED_BY}
    if component:
        result[COMPONENT] = component
    if version:
        result[VERSION] = version
    return result


def platform_pod_selector() -> dict[str, str]:
    """Matches every pod of the platform: NetworkPolicies admit exactly these."""
    return {PART_OF_KEY: PART_OF}
