"""The platform's admission rules as a Pulumi CrossGuard policy pack, and its offline runner.

Owns ``POLICIES``: the ``ResourceValidationPolicy`` objects that ``policy-pack/__main__.py`` serves
to the Pulumi CLI (``pulumi preview --policy-pack policy-pack``) and that ``check_resource`` runs
in-process for the offline plan, on every resource of every stack. One set of validators, two
callers: what the plan passes, the CLI passes.

- ``pod-security``: the Pod Security Standard `restricted` (``stacks.policy.pod_security``), at
  the stack's Kubernetes version and at the newest version the table knows;
- ``container-resources``: CPU and memory requests and a memory limit on every container
  (``stacks.policy.resources``).

Does not own the rules themselves, only their packaging and reporting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from stacks.policy import pod_security
from stacks.policy.resources import resource_violations

PACK_NAME = "ha-celery"
KUBERNETES_VERSION_KEY = "kubernetesVersion"


def kubernetes_manifest(resource_type: str, props: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object a Kubernetes resource applies, from its inputs; None for anything else
    (GCP resources, providers, Helm releases and YAML groups, whose objects are not inputs)."""
    if not resource_type.startswith("kubernetes:") or resource_type.startswith(
        ("kubernetes:helm.sh", "kubernetes:yaml", "kubernetes:kustomize")
    ):
        return None
    manifest = dict(props)
    manifest.setdefault("kind", resource_type.rsplit(":", 1)[-1])
    return manifest


def _versions(args: ResourceValidationArgs) -> list[str]:
    configured = str(args.get_config().get(KUBERNETES_VERSION_KEY) or "latest")
    versions = {configured, "latest"}
    return sorted(versions, key=pod_security.parse_version)


def _validate_pod_security(args: ResourceValidationArgs, report: ReportViolation) -> None:
    manifest = kubernetes_manifest(args.resource_type, args.props)
    if manifest is None:
        return
    versions = _versions(args)
    failing: dict[str, list[str]] = {}
    for version in versions:
        for problem in pod_security.pod_security_violations(manifest, version):
            failing.setdefault(problem, []).append(version)
    for problem, where in failing.items():
        if len(where) < len(versions):
            numbers = ", ".join("{}.{}".format(*pod_security.parse_version(v)) for v in where)
            problem = f"{problem} (on Kubernetes {numbers} only)"
        report(problem, None)


def _validate_resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    manifest = kubernetes_manifest(args.resource_type, args.props)
    if manifest is None:
        return
    for problem in resource_violations(manifest):
        report(problem, None)


_VERSION_SCHEMA = PolicyConfigSchema(
    properties={
        KUBERNETES_VERSION_KEY: {
            "type": "string",
            "pattern": r"^(1\.[0-9]{2}|latest)$",
            "default": "latest",
            "description": "The cluster's Kubernetes minor version; 'latest' checks are always run "
            "too, since the namespace enforces the API server's newest rules.",
        }
    }
)

POLICIES: tuple[ResourceValidationPolicy, ...] = (
    ResourceValidationPolicy(
        name="pod-security",
        description="Pods meet the Pod Security Standard 'restricted' that the platform's "
        "namespace enforces (every baseline and restricted control).",
        validate=_validate_pod_security,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_VERSION_SCHEMA,
        url=pod_security.DOCS,
    ),
    ResourceValidationPolicy(
        name="container-resources",
        description="Every container declares CPU and memory requests and a memory limit.",
        validate=_validate_resources,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
)


def check_resource(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    urn: str = "",
    name: str = "",
    kubernetes_version: str = "latest",
) -> list[str]:
    """Run every policy of the pack on one resource, as the CLI would; ``"<policy>: <message>"``
    per violation."""
    violations: list[str] = []
    options = PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )
    for policy in POLICIES:
        args = ResourceValidationArgs(
            resource_type=resource_type,
            props=props,
            urn=urn,
            name=name,
            opts=options,
            provider=None,
            config={KUBERNETES_VERSION_KEY: kubernetes_version},
        )
        result = policy.validate(
            args,
            lambda message, _urn=None, policy=policy: violations.append(
                f"{policy.name}: {message}"
            ),
        )
        if result is not None:  # every validator here is synchronous
            raise RuntimeError(f"policy {policy.name} returned an awaitable")
    return violations


def check_manifest(manifest: Mapping[str, Any], kubernetes_version: str = "latest") -> list[str]:
    """``check_resource`` for a manifest (the resource type derived from apiVersion and kind)."""
    api_version = str(manifest.get("apiVersion") or "v1")
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    resource_type = f"kubernetes:{group_version}:{manifest.get('kind')}"
    return check_resource(resource_type, manifest, kubernetes_version=kubernetes_version)
