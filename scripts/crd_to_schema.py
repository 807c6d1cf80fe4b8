#!/usr/bin/env python3
"""Turn an upstream CustomResourceDefinition into a bundled schema under stacks/schemas/.

    python3 scripts/crd_to_schema.py CRD.yaml VERSION SOURCE_URL \
        > stacks/schemas/GROUP/VERSION/KIND.yaml

The offline plan validates custom resources with JSON Schema (``stacks/plan.py``), strictly, the
way it validates built-in kinds: an unknown field is an error. A CRD's ``openAPIV3Schema`` is
almost that already; this keeps its structure and types and makes it strict:

- every object with ``properties`` gets ``additionalProperties: false`` (the API server would
  silently prune an unknown field; the plan refuses it, so a typo is caught before deploying);
- ``x-kubernetes-int-or-string`` becomes ``anyOf: [integer, string]``;
- ``status``, descriptions and the other ``x-kubernetes-*`` markers are dropped (CEL
  ``x-kubernetes-validations`` cannot be evaluated here; the server still applies them);
- ``apiVersion`` and ``kind`` become constants and ``metadata`` the shared definition.

Standard library plus PyYAML only, so it runs anywhere the plan runs.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

DROP = {"description", "x-kubernetes-validations", "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys", "x-kubernetes-map-type"}


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if key not in DROP}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("x-kubernetes-preserve-unknown-fields")
    elif "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def convert(crd: dict[str, Any], version: str) -> dict[str, Any]:
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = served["schema"]["openAPIV3Schema"]
    properties = dict(schema["properties"])
    properties.pop("status", None)
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    properties["apiVersion"] = {"const": f"{group}/{version}"}
    properties["kind"] = {"const": kind}
    properties["metadata"] = {"$ref": "_common.yaml#/metadata"}
    result = strict({"type": "object", "properties": properties})
    result["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, version, source = argv[1:]
    with open(path) as handle:
        crd = yaml.safe_load(handle)
    kind = crd["spec"]["names"]["kind"]
    print(
        f"# {kind} ({crd['spec']['group']}/{version}), {crd['spec']['scope']}: converted by "
        "scripts/crd_to_schema.py from\n"
        f"# {source}\n"
        "# Strict (unknown fields are errors); descriptions, status and CEL validations omitted."
    )
    print(yaml.safe_dump(convert(crd, version), sort_keys=False, width=100), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
