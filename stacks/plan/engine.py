"""The mock runtime that evaluates a program offline and records every registration.

Owns `PlanMocks` (inputs as outputs, plus deterministic fakes for what only the cloud knows),
`RecordingMonitor` (keeps each registration's parent, provider and secret markers), `Plan` (the
evaluated resource graph) and `evaluate` / `run_program`, which the tests use to assert on whole
stacks and single components.

Does not validate manifests (``validate``), write files (``output``) or compare plans
(``compare``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stacks.config import PROJECT
from stacks.plan.stackfile import (
    ROOT,
    SECRET_PLACEHOLDER_PREFIX,
    _placeholders,
    _qualify,
    read_stack_config,
)

SECRET = "[secret]"


OPTION_KEYS = (
    "protect",
    "retainOnDelete",
    "ignoreChanges",
    "deleteBeforeReplace",
    "replaceOnChanges",
    "customTimeouts",
    "dependsOn",
)
"""The resource options ``resources.json`` records, as the RegisterResource request carries them
(the engine acts on them: protect and retainOnDelete on delete, ignoreChanges and
replaceOnChanges on diff, customTimeouts on every provider call)."""


def default_options() -> dict[str, Any]:
    """What a resource registered without any option records (and what an older plan, written
    before options were recorded, is assumed to have had)."""
    return {
        "protect": False,
        "retainOnDelete": False,
        "ignoreChanges": [],
        "deleteBeforeReplace": None,
        "replaceOnChanges": [],
        "customTimeouts": None,
        "dependsOn": [],
    }


def options_from_request(request: Any) -> dict[str, Any]:
    """The options of one RegisterResource request, in a stable order.

    ``dependsOn`` lists the explicit dependencies only (a component in ``depends_on`` counts as
    its resources): the engine also orders a resource after every resource one of its inputs
    comes from, and those are visible in the inputs themselves.
    """
    implicit: set[str] = set()
    for deps in request.propertyDependencies.values():
        implicit.update(deps.urns)
    timeouts = {
        key: getattr(request.customTimeouts, key)
        for key in ("create", "update", "delete")
        if getattr(request.customTimeouts, key)
    }
    return {
        "protect": bool(request.protect),
        "retainOnDelete": bool(request.retainOnDelete),
        "ignoreChanges": sorted(request.ignoreChanges),
        "deleteBeforeReplace": (
            bool(request.deleteBeforeReplace) if request.deleteBeforeReplaceDefined else None
        ),
        "replaceOnChanges": sorted(request.replaceOnChanges),
        "customTimeouts": timeouts or None,
        "dependsOn": sorted(set(request.dependencies) - implicit),
    }


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    parent: str | None
    provider: str | None
    custom: bool
    inputs: dict[str, Any]
    """Inputs as registered; secret values are still wrapped (see ``redact``)."""
    options: dict[str, Any] = field(default_factory=default_options)
    """The resource options (keys: ``OPTION_KEYS``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "provider": self.provider,
            "options": self.options,
            "inputs": sort_keys(redact(self.inputs)),
            "secretDigests": secret_digests(self.inputs),
        }


def sort_keys(value: Any) -> Any:
    """The same value with every mapping's keys sorted: the wire format does not keep their
    order, and two plans of one config must write the same bytes."""
    if isinstance(value, dict):
        return {key: sort_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(item) for item in value]
    return value


def secret_digests(value: Any, path: str = "") -> dict[str, str]:
    """A short digest of every secret value, by property path (``stringData.broker_url``).

    ``resources.json`` shows secrets as ``"[secret]"``; the digests let a change review tell a
    changed secret from an unchanged one. Under the plan a secret is never a real value (config
    secrets are placeholders derived from their ciphertext, generated ones are fakes), and 48
    bits of a hash could not give one back anyway."""
    digests: dict[str, str] = {}
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        if isinstance(inner, dict):
            for key in sorted(inner):
                digests[f"{path}.{key}" if path else key] = _digest(inner[key])
        else:
            digests[path] = _digest(inner)
    elif isinstance(value, dict):
        for key in sorted(value):
            digests.update(secret_digests(value[key], f"{path}.{key}" if path else key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            digests.update(secret_digests(item, f"{path}[{index}]"))
    return digests


def _digest(value: Any) -> str:
    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def redact(value: Any) -> Any:
    """Replace every secret (and anything derived from one) by ``"[secret]"``."""
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        # A secret mapping (a Secret's stringData) keeps its keys, which are not secret and
        # show what the object holds; every value is hidden.
        if isinstance(inner, dict):
            return {key: SECRET for key in inner}
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        # The wire format carries every number as a double; Kubernetes wants integers back.
        return int(value)
    if isinstance(value, pulumi.StringAsset):
        # An inline file (a Helm values file): its text is the input a review must see.
        return {"stringAsset": value.text}
    if isinstance(value, pulumi.asset.Asset | pulumi.asset.Archive):
        return {"asset": type(value).__name__}
    return value


def _pem(kind: str, seed: str) -> str:
    return f"-----BEGIN {kind}-----\n{_fake('PLAN', seed)}\n-----END {kind}-----\n"


def _fake(kind: str, seed: str) -> str:
    return f"{kind}{hashlib.sha256(seed.encode()).hexdigest()[:16]}"


class PlanMocks(pulumi.runtime.Mocks):
    """Returns inputs as outputs, plus deterministic fakes for what only the cloud knows."""

    def __init__(self, project_id: str = "plan-project") -> None:
        self.project_id = project_id

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        seed = f"{args.typ}/{args.name}"
        typ = args.typ
        if typ.startswith("kubernetes:") and not typ.startswith("kubernetes:helm.sh"):
            metadata = dict(outputs.get("metadata") or {})
            # Pulumi auto-names objects without metadata.name: a stable suffix stands in.
            metadata.setdefault("name", autoname(args.name))
            outputs["metadata"] = metadata
        else:
            outputs.setdefault("name", args.inputs.get("name", args.name))
        extra: dict[str, Any] = {}
        if typ == "gcp:container/cluster:Cluster":
            extra = {
                "endpoint": "203.0.113.10",
                "masterAuth": {"clusterCaCertificate": "UExBTi1DQQ=="},
            }
        elif typ == "gcp:compute/globalAddress:GlobalAddress":
            extra = {"address": "203.0.113.20"}
        elif typ == "gcp:dns/managedZone:ManagedZone":
            extra = {"nameServers": [f"ns-cloud-a{i}.googledomains.com." for i in range(1, 5)]}
        elif typ == "gcp:serviceaccount/account:Account":
            project = args.inputs.get("project") or self.project_id
            extra = {"email": f"{args.inputs.get('accountId')}@{project}.iam.gserviceaccount.com"}
        elif typ == "gcp:storage/bucket:Bucket":
            extra = {"url": f"gs://{outputs['name']}"}
        elif typ == "gcp:artifactregistry/repository:Repository":
            extra = {"registryUri": f"europe-docker.pkg.dev/{self.project_id}/{outputs['name']}"}
        elif typ in (
            "random:index/randomPassword:RandomPassword",
            "random:index/randomString:RandomString",
        ):
            extra = {"result": rpc.wrap_rpc_secret(_fake(SECRET_PLACEHOLDER_PREFIX, seed))}
        elif typ == "random:index/randomId:RandomId":
            extra = {"hex": _fake("", seed), "b64Std": _fake("", seed)}
        elif typ == "tls:index/privateKey:PrivateKey":
            pem = (
                "-----BEGIN PUBLIC KEY-----\n"
                + _fake("PLANPUBLICKEY", seed)
                + "\n-----END PUBLIC KEY-----\n"
            )
            extra = {
                "privateKeyPem": rpc.wrap_rpc_secret(_fake(SECRET_PLACEHOLDER_PREFIX, seed)),
                "privateKeyPemPkcs8": rpc.wrap_rpc_secret(
                    _fake(SECRET_PLACEHOLDER_PREFIX, seed + "8")
                ),
                "publicKeyPem": pem,
                "publicKeyOpenssh": "ssh-rsa " + _fake("PLAN", seed),
            }
        elif typ == "tls:index/certRequest:CertRequest":
            extra = {"certRequestPem": _pem("CERTIFICATE REQUEST", seed)}
        elif typ in ("tls:index/selfSignedCert:SelfSignedCert",
                     "tls:index/locallySignedCert:LocallySignedCert"):
            # Certificates are public (a stand-in PEM, deterministic per resource).
            extra = {"certPem": _pem("CERTIFICATE", seed)}
        elif typ.startswith("docker-build:index:Image"):
            digest = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
            tags = args.inputs.get("tags") or ["plan/image:plan"]
            extra = {"digest": digest, "ref": f"{str(tags[0]).split(':')[0]}@{digest}"}
        outputs.update(extra)
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        if args.token == "gcp:dns/getKeys:getKeys":
            return {
                "keySigningKeys": [{"dsRecord": "2371 8 2 PLANDSRECORDDIGEST", "isActive": True}],
                "zoneSigningKeys": [],
                "managedZone": args.args.get("managedZone"),
            }
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"project": self.project_id, "accessToken": "plan"}
        return {}


def autoname(resource_name: str) -> str:
    """What Pulumi's auto-naming would produce, with a stable suffix instead of a random one."""
    return f"{resource_name}-{hashlib.sha256(resource_name.encode()).hexdigest()[:7]}"


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, keeping each registration's parent, provider, options and secret
    markers."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Resource] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        provider = request.provider.split("::")
        provider_urn = "::".join(provider[:-1]) if request.provider else None
        self.registrations.append(
            Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                provider=provider_urn,
                custom=bool(request.custom),
                inputs=rpc.deserialize_properties(request.object) if request.object else {},
                options=options_from_request(request),
            )
        )
        return response


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class Plan:
    """The evaluated resource graph of one stack."""

    stack: str
    kubernetes_version: str
    resources: list[Resource]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> Resource:
        matches = [r for r in self.resources if r.type == type_token and r.name == name]
        if len(matches) != 1:
            raise LookupError(f"expected one {type_token} named {name!r}, found {len(matches)}")
        return matches[0]

    def by_urn(self, urn: str) -> Resource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise LookupError(urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object as it would be applied (secrets redacted)."""
        return [to_manifest(r) for r in self.resources if is_kubernetes_object(r)]

    def manifest(self, kind: str, name: str) -> dict[str, Any]:
        matches = [
            m for m in self.manifests() if m.get("kind") == kind and m["metadata"]["name"] == name
        ]
        if len(matches) != 1:
            names = sorted(m["metadata"]["name"] for m in self.manifests() if m.get("kind") == kind)
            raise LookupError(f"expected one {kind} named {name!r}; {kind}s: {names}")
        return matches[0]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests() if m.get("kind") == kind]


def is_kubernetes_object(resource: Resource) -> bool:
    return (
        resource.custom
        and resource.type.startswith("kubernetes:")
        and not resource.type.startswith("kubernetes:helm.sh")
        and not resource.type.startswith("pulumi:providers:")
        and not resource.type.startswith("kubernetes:yaml")
    )


def to_manifest(resource: Resource) -> dict[str, Any]:
    body = sort_keys(redact(resource.inputs))
    body = {k: v for k, v in body.items() if not k.startswith("__")}
    metadata = dict(body.get("metadata") or {})
    metadata.setdefault("name", autoname(resource.name))
    body["metadata"] = sort_keys(metadata)
    # apiVersion, kind and metadata first (as kubectl shows them), everything else sorted.
    ordered = {
        "apiVersion": body.pop("apiVersion", None),
        "kind": body.pop("kind", None),
        "metadata": body.pop("metadata"),
    }
    ordered.update(dict(sorted(body.items())))
    return ordered


def evaluate(stack: str, project_dir: Path = ROOT, overrides: dict[str, Any] | None = None) -> Plan:
    """Run the stack's program under mocks. ``overrides`` replace stack settings (tests use
    them to try bad values): keys as in the YAML file, values as YAML would give them. A key
    with a dotted path (``rabbitmq.storageSize``, as `pulumi config set --path` spells it)
    replaces only that field of the stack file's value.

    Raises ConfigError for bad settings, before any resource is registered."""
    from stacks import config as stack_config
    from stacks import platform

    config, secret_keys = read_stack_config(stack, project_dir)
    for key, value in (overrides or {}).items():
        top, _, rest = key.partition(".")
        if rest:
            current = config.get(_qualify(top))
            document = json.loads(current) if current is not None else {}
            value = _set_path(document, rest.split("."), value)
            key = top
        value, encrypted = _placeholders(_qualify(key), value)
        if encrypted:
            secret_keys.append(_qualify(key))
        config[_qualify(key)] = value if isinstance(value, str) else json.dumps(value)
    monitor = _install_mocks(stack, config, secret_keys)
    loaded = stack_config.load(stack)
    outputs: dict[str, Any] = {}

    def program() -> None:
        outputs.update(platform.build(loaded))

    _sync_await(run_pulumi_func(program))
    return Plan(
        stack=stack,
        kubernetes_version=loaded.kubernetes_version,
        resources=list(monitor.registrations),
        outputs=outputs,
    )


def _set_path(document: Any, path: list[str], value: Any) -> Any:
    """``document`` with the field at ``path`` (mapping keys; ``[n]`` for list items) set."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head.endswith("]") and "[" in head:
        name, index = head[:-1].split("[")
        items = list((document or {}).get(name) or []) if name else list(document or [])
        items[int(index)] = _set_path(items[int(index)], rest, value)
        if not name:
            return items
        return {**(document or {}), name: items}
    if not isinstance(document, dict):
        document = {}
    return {**document, head: _set_path(document.get(head), rest, value)}


def run_program(
    program: Callable[[], Any], *, stack: str = "test", config: dict[str, str] | None = None
) -> Plan:
    """Run any program (typically one component) under fresh recording mocks and wait until
    every resource is registered. Component tests use it to assert on what was created."""
    monitor = _install_mocks(stack, config or {}, [])
    _sync_await(run_pulumi_func(program))
    return Plan(stack=stack, kubernetes_version="1.33", resources=list(monitor.registrations))


def _install_mocks(stack: str, config: dict[str, str], secret_keys: list[str]) -> RecordingMonitor:
    mocks = PlanMocks(project_id=config.get("gcp:project", "plan-project"))
    monitor = RecordingMonitor(mocks)
    # A fresh root Stack resource per evaluation: several stacks can be planned in one process.
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    return monitor
