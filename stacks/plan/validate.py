"""Manifest validation: every Kubernetes object against the OpenAPI schema of the stack's
Kubernetes version (strict: unknown fields are errors), custom resources against the bundled
schemas in ``stacks/schemas/``, and every object through the platform's policy pack
(``stacks/policy``: Pod Security `restricted` and the resource rule, the validators
``pulumi preview --policy-pack policy-pack`` runs).

Returns problems; does not print or exit (``cli`` does).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks import policy
from stacks.plan.stackfile import ROOT

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
# Objects Kubernetes does not place in a namespace.
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "ClusterTriggerAuthentication",
    # Managed Service for Prometheus (monitoring.googleapis.com).
    "ClusterRules",
    "ClusterPodMonitoring",
}



@dataclass(frozen=True)
class Problem:
    manifest: str
    message: str

    def __str__(self) -> str:
        return f"{self.manifest}: {self.message}"


def manifest_id(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name")
    return f"{manifest.get('kind')}/{namespace + '/' if namespace else ''}{name}"


def validate_manifests(
    manifests: Iterable[dict[str, Any]], kubernetes_version: str
) -> list[Problem]:
    """Schema (strict) + Pod Security `restricted` + resources; returns every problem found."""
    import kubernetes_validate

    problems: list[Problem] = []
    for manifest in manifests:
        ident = manifest_id(manifest)
        try:
            validator = _custom_validator(str(manifest.get("apiVersion") or ""),
                                          str(manifest.get("kind")))
            if validator is None:
                validator = _openapi_validator(str(manifest.get("apiVersion") or ""),
                                               str(manifest.get("kind")), kubernetes_version)
            validator.validate(manifest)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                Problem(
                    ident,
                    f"no schema for {manifest.get('apiVersion')} "
                    f"{manifest.get('kind')} in Kubernetes {kubernetes_version}"
                    " (add one under stacks/schemas/)",
                )
            )
        except Exception as error:  # jsonschema / kubernetes_validate ValidationError
            path = "/".join(str(p) for p in getattr(error, "absolute_path", []) or [])
            message = getattr(error, "message", str(error)).splitlines()[0]
            problems.append(Problem(ident, f"schema: {path or '(root)'}: {message}"))
        # The CrossGuard pack's own validators (policy-pack/), run in-process.
        for message in policy.check_manifest(manifest, kubernetes_version):
            problems.append(Problem(ident, message))
    return problems


@functools.cache
def _openapi_validator(api_version: str, kind: str, kubernetes_version: str) -> Any:
    """The strict OpenAPI schema of a built-in kind at a Kubernetes minor version, as a ready
    validator (kubernetes-validate's bundled schemas, picked the way its ``validate`` picks them:
    the newest schema version not newer than the one asked for). Built once per kind and
    version: a plan validates a hundred objects of a dozen kinds, and every schema refers to one
    large definitions file."""
    import jsonschema
    import kubernetes_validate
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    if utils.major_minor(kubernetes_version) > utils.latest_version():
        raise kubernetes_validate.VersionNotSupportedError(version=kubernetes_version)
    version = [v for v in utils.all_versions()
               if utils.major_minor(v) <= utils.major_minor(kubernetes_version)][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    directory = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = utils.schema_contents(f"{directory}/{kind.lower()}-{group_version}.json",
                                       kubernetes_version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=kubernetes_version, kind=kind, api_version=api_version) from None
    registry = Resource.from_contents(_definitions(directory, kubernetes_version)) @ (
        Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _definitions(directory: str, kubernetes_version: str) -> Any:
    from kubernetes_validate import utils

    return utils.schema_contents(f"{directory}/_definitions.json", kubernetes_version)


@functools.cache
def _custom_validator(api_version: str, kind: str) -> Any:
    """The validator of a custom resource's bundled schema; None for built-in kinds (OpenAPI
    covers them). A custom resource without a bundled schema fails validation: unchecked YAML is
    exactly what the plan exists to prevent."""
    import jsonschema

    schema = _custom_schema({"apiVersion": api_version, "kind": kind})
    if schema is None:
        return None
    if schema.get("not") == {}:
        return _Refuse(schema["description"])
    return jsonschema.Draft202012Validator(schema)


class _Refuse:
    """A validator that refuses everything with one message (a missing bundled schema)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def validate(self, _instance: Any) -> None:
        import jsonschema

        raise jsonschema.ValidationError(self.message)


def _custom_schema(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The bundled schema of a custom resource (``$ref``s to ``_common.yaml`` inlined); None for
    built-in kinds."""
    api_version = str(manifest.get("apiVersion") or "")
    group = api_version.split("/")[0] if "/" in api_version else ""
    if not group or "." not in group or group.endswith(".k8s.io"):
        return None
    version = api_version.split("/")[1]
    path = SCHEMA_DIR / group / version / f"{str(manifest.get('kind')).lower()}.yaml"
    if not path.exists():
        return {"not": {}, "description": f"no bundled schema {path.relative_to(ROOT)}"}
    common = yaml.safe_load((SCHEMA_DIR / "_common.yaml").read_text())

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("_common.yaml#/"):
                return common[ref.split("/", 1)[1]]
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(yaml.safe_load(path.read_text()))
