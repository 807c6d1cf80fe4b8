"""The offline engine: evaluate a stack without the Pulumi CLI, a cloud account or a cluster.

    python -m stacks.plan --stack prod [--out build/plan/prod]

Runs the real program (``stacks.config.load`` + ``stacks.platform.build``) in-process under
Pulumi's mock runtime, with the stack's own ``Pulumi.<stack>.yaml`` (encrypted values become
placeholders), then:

- prints the resource tree (type and name, indented by parent);
- writes ``resources.json``: one object per resource with ``urn``, ``type``, ``name``,
  ``parent``, ``provider`` and ``inputs``; every secret value is replaced by ``"[secret]"``;
- writes ``manifests/``: every Kubernetes object as YAML, one file per object;
- validates every manifest against the OpenAPI schema of the stack's Kubernetes version
  (strict: unknown fields are errors), custom resources against the schemas in
  ``stacks/schemas/``, and every pod against the Pod Security Standard `restricted`;
- exits 0 when all is well, 2 on bad config, 3 on invalid manifests.

The tests use ``evaluate()`` to assert on whole-stack resource graphs.

What the mocks cannot know (IDs, IPs, generated passwords) is faked deterministically, so two
runs of the same config write the same files. Outputs that only exist after a real deployment
(e.g. the KEDA chart's rendered objects) are not rendered: the Helm release is listed as a
resource with its values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stacks import policy
from stacks.config import PROJECT, ConfigError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "[secret]"
SECRET_PLACEHOLDER_PREFIX = "plansecret"
"""Every faked secret (config secrets, generated passwords and keys) starts with this, so a
test can search the written files for any of them."""
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
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
}


# ---------------------------------------------------------------------------------------------
# Stack files


def read_stack_config(stack: str, project_dir: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """Pulumi.yaml defaults merged with Pulumi.<stack>.yaml, as the engine passes config to a
    program: fully-qualified keys, JSON-encoded non-string values. Returns (config, secret keys).
    """
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise ConfigError(
            stack, [f"no stack file {stack_file.name}; known stacks: {', '.join(known) or 'none'}"],
            missing_file=True,
        )
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[_qualify(key)] = spec["default"]
    try:
        stack_doc = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(stack, [f"{stack_file.name} is not valid YAML: {error}"]) from None
    for key, value in (stack_doc.get("config") or {}).items():
        values[_qualify(key)] = value

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in values.items():
        value, encrypted = _placeholders(key, value)
        if encrypted:
            secret_keys.append(key)
        if isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secret_keys


def _placeholders(path: str, value: Any) -> tuple[Any, bool]:
    """Replace encrypted values (``{secure: ...}``, at any depth) with placeholders.

    Only `pulumi` can decrypt them, so the plan uses recognisable placeholders that tests prove
    never leak into the output. Returns the value and whether anything in it was encrypted."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        digest = hashlib.sha256(path.encode()).hexdigest()[:12]
        return f"{SECRET_PLACEHOLDER_PREFIX}{digest}", True
    if isinstance(value, dict):
        pairs = {k: _placeholders(f"{path}.{k}", v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_placeholders(f"{path}[{i}]", v) for i, v in enumerate(value)]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _qualify(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


# ---------------------------------------------------------------------------------------------
# Mock runtime that records every registration


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

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "provider": self.provider,
            "inputs": redact(self.inputs),
        }


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
    return value


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
    """The mock monitor, keeping each registration's parent, provider and secret markers."""

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
    body = redact(resource.inputs)
    body = {k: v for k, v in body.items() if not k.startswith("__")}
    metadata = dict(body.get("metadata") or {})
    metadata.setdefault("name", autoname(resource.name))
    body["metadata"] = metadata
    ordered = {
        "apiVersion": body.pop("apiVersion", None),
        "kind": body.pop("kind", None),
        "metadata": body.pop("metadata"),
    }
    ordered.update(dict(sorted(body.items())))
    return ordered


def evaluate(stack: str, project_dir: Path = ROOT, overrides: dict[str, Any] | None = None) -> Plan:
    """Run the stack's program under mocks. ``overrides`` replace stack settings (tests use
    them to try bad values): keys as in the YAML file, values as YAML would give them.

    Raises ConfigError for bad settings, before any resource is registered."""
    from stacks import config as stack_config
    from stacks import platform

    config, secret_keys = read_stack_config(stack, project_dir)
    for key, value in (overrides or {}).items():
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


# ---------------------------------------------------------------------------------------------
# Validation


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
    """Schema (strict) + the policy pack (Pod Security `restricted`, resources); returns every
    problem found."""
    import kubernetes_validate

    problems: list[Problem] = []
    version = f"{kubernetes_version}.0"
    for manifest in manifests:
        ident = manifest_id(manifest)
        schema = _custom_schema(manifest)
        try:
            if schema is not None:
                import jsonschema

                if schema.get("not") == {}:
                    raise jsonschema.ValidationError(schema["description"])
                jsonschema.Draft202012Validator(schema).validate(manifest)
            else:
                kubernetes_validate.validate(manifest, version, strict=True)
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


def _custom_schema(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The bundled schema of a custom resource; None for built-in kinds (OpenAPI covers them).

    A custom resource without a bundled schema fails validation: unchecked YAML is exactly
    what the plan exists to prevent."""
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


# ---------------------------------------------------------------------------------------------
# Output


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
    resources = [r.to_json() for r in plan.resources if r.type != "pulumi:pulumi:Stack"]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.plan",
        description="Evaluate a stack offline: print its resources, write resources.json and "
        "Kubernetes manifests, and validate them. No Pulumi CLI or cloud needed.",
    )
    parser.add_argument(
        "--stack", required=True, help="stack name: reads Pulumi.STACK.yaml (dev, prod, local, ...)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: build/plan/STACK)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the resource tree")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=ROOT,
        help="directory holding Pulumi.yaml and the stack files (default: repo)",
    )
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / "plan" / args.stack

    try:
        plan = evaluate(args.stack, project_dir=args.project_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(resource_tree(plan))
    paths = write(plan, out)
    problems = validate_manifests(plan.manifests(), plan.kubernetes_version)
    count = len([r for r in plan.resources if r.type != "pulumi:pulumi:Stack"])
    print(f"\nstack {args.stack}: {count} resources, {len(paths)} Kubernetes manifests -> {out}")
    if problems:
        print(
            f"error: {len(problems)} manifest problem(s) (Kubernetes {plan.kubernetes_version}):",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 3
    print(
        f"all manifests valid against Kubernetes {plan.kubernetes_version} and Pod Security "
        "'restricted'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
