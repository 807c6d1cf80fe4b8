"""The platform's resource rule: every container declares CPU and memory requests and a memory
limit.

Without requests the scheduler overcommits nodes, and a backup or a burst of tasks starves the
database or the broker; without a memory limit one leaking process takes its node down. Ephemeral
debug containers are exempt (the API does not accept resources for them).

Does not own the Pod Security controls (``stacks.policy.pod_security``).
"""

from __future__ import annotations

from typing import Any

from stacks.policy.pod_security import pod_template


def resource_violations(manifest: dict[str, Any]) -> list[str]:
    """Containers missing a CPU request, a memory request or a memory limit."""
    template = pod_template(manifest)
    if template is None:
        return []
    _, spec = template
    problems = []
    for field_name in ("initContainers", "containers"):
        for container in spec.get(field_name) or []:
            resources = container.get("resources") or {}
            requests = resources.get("requests") or {}
            limits = resources.get("limits") or {}
            missing = [
                name
                for name, present in (
                    ("requests.cpu", "cpu" in requests),
                    ("requests.memory", "memory" in requests),
                    ("limits.memory", "memory" in limits),
                )
                if not present
            ]
            if missing:
                problems.append(
                    f"{field_name}[{container.get('name')}]: set resources {', '.join(missing)}"
                )
    return problems
