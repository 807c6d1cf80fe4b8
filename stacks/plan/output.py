"""What the plan writes and prints: the resource tree, ``resources.json`` and one YAML file per
Kubernetes object.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stacks.plan.engine import Plan, Resource


def resource_tree(plan: Plan) -> str:
    """Type and name of every resource, indented by parent."""
    children: dict[str | None, list[Resource]] = {}
    urns = {r.urn for r in plan.resources}
    for resource in plan.resources:
        parent = resource.parent if resource.parent in urns else None
        children.setdefault(parent, []).append(resource)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for resource in children.get(parent, []):
            lines.append(f"{'    ' * depth}{resource.type}  {resource.name}")
            walk(resource.urn, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def write(plan: Plan, out: Path) -> list[Path]:
    """resources.json and one YAML file per Kubernetes object; returns the manifest paths."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_dir = out / "manifests"
    if manifest_dir.exists():
        for old in manifest_dir.glob("*.yaml"):
            old.unlink()
    manifest_dir.mkdir(exist_ok=True)
    # Sorted by URN (registration order varies from run to run): two plans of one config write
    # the same bytes, so plan directories can be diffed as they are.
    resources = sorted(
        (r.to_json() for r in plan.resources if r.type != "pulumi:pulumi:Stack"),
        key=lambda r: r["urn"],
    )
    (out / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
    paths = []
    for manifest in plan.manifests():
        metadata = manifest["metadata"]
        stem = "_".join(
            filter(
                None,
                [metadata.get("namespace"), str(manifest.get("kind")).lower(), metadata["name"]],
            )
        )
        path = manifest_dir / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        paths.append(path)
    return paths
