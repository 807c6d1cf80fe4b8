"""A third-party IaC scan of a stack: checkov over its manifests and its GCP resources.

    python -m stacks.scan [--stack dev --stack prod ...]

Evaluates each stack offline (``stacks.plan.evaluate``), writes its Kubernetes manifests, and
translates its GCP resources into the Terraform plan JSON that checkov's ``terraform_plan``
framework reads (the Pulumi GCP provider is a bridge of the Terraform google provider, so every
resource has a Terraform twin with the same attributes in snake case; blocks become one-element
lists, as in ``terraform show -json``). Then runs checkov (its own hash-pinned environment in
``.tools/checkov``, installed by ``scripts/prereq.d/60-checkov.sh``) on both and holds every
failed check against ``stacks/scan_skips.yaml``: a finding is either justified there (a check, the
resources it may fail for, and the reason) or reported. Exit status 1 when anything is
unjustified, or when a skip no longer matches any finding (a stale justification hides the next
real one).

Owns the translation and the verdict; does not own the rules (checkov's) or the skip reasons
(the YAML file, next to the code they excuse).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
SKIPS = Path(__file__).resolve().parent / "scan_skips.yaml"
STACKS = ("dev", "prod", "local")

# Pulumi type token -> Terraform resource type, for every GCP type the program creates. A type
# missing here fails the scan (an untranslated resource would be silently unscanned).
TERRAFORM_TYPES = {
    "gcp:artifactregistry/repository:Repository": "google_artifact_registry_repository",
    "gcp:compute/firewall:Firewall": "google_compute_firewall",
    "gcp:compute/globalAddress:GlobalAddress": "google_compute_global_address",
    "gcp:compute/network:Network": "google_compute_network",
    "gcp:compute/router:Router": "google_compute_router",
    "gcp:compute/routerNat:RouterNat": "google_compute_router_nat",
    "gcp:compute/securityPolicy:SecurityPolicy": "google_compute_security_policy",
    "gcp:compute/sSLPolicy:SSLPolicy": "google_compute_ssl_policy",
    "gcp:compute/subnetwork:Subnetwork": "google_compute_subnetwork",
    "gcp:container/cluster:Cluster": "google_container_cluster",
    "gcp:container/nodePool:NodePool": "google_container_node_pool",
    "gcp:dns/managedZone:ManagedZone": "google_dns_managed_zone",
    "gcp:dns/recordSet:RecordSet": "google_dns_record_set",
    "gcp:iap/settings:Settings": "google_iap_settings",
    "gcp:monitoring/dashboard:Dashboard": "google_monitoring_dashboard",
    "gcp:iap/webTypeComputeIamBinding:WebTypeComputeIamBinding": (
        "google_iap_web_type_compute_iam_binding"
    ),
    "gcp:projects/iAMAuditConfig:IAMAuditConfig": "google_project_iam_audit_config",
    "gcp:projects/iAMMember:IAMMember": "google_project_iam_member",
    "gcp:projects/service:Service": "google_project_service",
    "gcp:secretmanager/secret:Secret": "google_secret_manager_secret",
    "gcp:secretmanager/secretIamMember:SecretIamMember": "google_secret_manager_secret_iam_member",
    "gcp:secretmanager/secretVersion:SecretVersion": "google_secret_manager_secret_version",
    "gcp:serviceaccount/account:Account": "google_service_account",
    "gcp:serviceaccount/iAMMember:IAMMember": "google_service_account_iam_member",
    "gcp:storage/bucket:Bucket": "google_storage_bucket",
    "gcp:storage/bucketIAMMember:BucketIAMMember": "google_storage_bucket_iam_member",
}
# Where the Pulumi name of a block differs from its Terraform name beyond camel -> snake case:
# the bridge pluralises repeated blocks (`secondary_ip_range` -> `secondaryIpRanges`).
TERRAFORM_BLOCK_NAMES = {
    "secondaryIpRanges": "secondary_ip_range",
    "nodePools": "node_pool",
    "lifecycleRules": "lifecycle_rule",
    "subnetworks": "subnetwork",
    "allows": "allow",
    "denies": "deny",
    "rules": "rule",
    "auditLogConfigs": "audit_log_config",
    "guestAccelerators": "guest_accelerator",
    "taints": "taint",
}
# Attributes that are maps (string -> string) in Terraform, not blocks: they stay objects.
MAP_ATTRIBUTES = {
    "labels",
    "resourceLabels",
    "metadata",
    "userLabels",
    "annotations",
    "resourceManagerTags",
    "effectiveLabels",
}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def terraform_values(value: Any, key: str | None = None) -> Any:
    """Pulumi inputs -> Terraform plan values: snake-case keys, blocks as one-element lists."""
    if isinstance(value, dict):
        if key in MAP_ATTRIBUTES:
            return dict(value)
        converted = {
            TERRAFORM_BLOCK_NAMES.get(k, snake(k)): terraform_values(v, k)
            for k, v in value.items()
            if not k.startswith("__")
        }
        return converted if key is None else [converted]
    if isinstance(value, list):
        items = [terraform_values(item, key) for item in value]
        # A list of blocks is already a list; unwrap the one-element lists made above.
        return [
            item[0]
            if isinstance(item, list) and len(item) == 1 and isinstance(item[0], dict)
            else item
            for item in items
        ]
    return value


def terraform_plan(resources: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The stack's GCP resources as ``terraform show -json`` would print them, and the types
    that have no Terraform twin in ``TERRAFORM_TYPES``."""
    planned, untranslated = [], []
    for resource in resources:
        token = resource["type"]
        if not token.startswith("gcp:"):
            continue
        terraform_type = TERRAFORM_TYPES.get(token)
        if terraform_type is None:
            untranslated.append(token)
            continue
        name = re.sub(r"[^A-Za-z0-9_]", "_", resource["name"])
        planned.append(
            {
                "address": f"{terraform_type}.{name}",
                "mode": "managed",
                "type": terraform_type,
                "name": name,
                "provider_name": "registry.terraform.io/hashicorp/google",
                "values": terraform_values(resource["inputs"]),
            }
        )
    document = {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "planned_values": {"root_module": {"resources": planned}},
        "configuration": {"root_module": {"resources": _references(planned)}},
        "resource_changes": [
            {
                "address": r["address"],
                "mode": "managed",
                "type": r["type"],
                "name": r["name"],
                "change": {"actions": ["create"], "before": None, "after": r["values"]},
            }
            for r in planned
        ],
    }
    return document, sorted(set(untranslated))


def _references(planned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``configuration`` block of a plan: which attribute refers to which resource, so
    checkov's graph checks (a network with its firewall rules, a bucket with its IAM) can connect
    resources. The offline engine fakes every resource's id as ``<name>-id`` (``PlanMocks``), so
    an input holding that value is a reference to that resource's id."""
    addresses = {f"{r['name'].replace('_', '-')}-id": r["address"] for r in planned}
    addresses.update({f"{r['name']}-id": r["address"] for r in planned})
    configuration = []
    for resource in planned:
        expressions = {
            key: {"references": [f"{addresses[value]}.id", addresses[value]]}
            for key, value in resource["values"].items()
            if isinstance(value, str) and value in addresses
        }
        configuration.append({"address": resource["address"], "mode": "managed",
                              "type": resource["type"], "name": resource["name"],
                              "expressions": expressions})
    return configuration


@dataclass(frozen=True)
class Finding:
    stack: str
    check: str
    title: str
    resource: str
    """checkov's resource id: ``Kind.namespace.name`` or ``terraform_type.name``."""

    def __str__(self) -> str:
        return f"{self.stack}: {self.check} ({self.title}) on {self.resource}"


@dataclass(frozen=True)
class Skip:
    check: str
    resources: tuple[str, ...]
    reason: str
    stacks: tuple[str, ...] = STACKS
    """The stacks the justification holds for (default: every stack)."""

    def matches(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and finding.stack in self.stacks
            and any(fnmatch.fnmatchcase(finding.resource, pattern) for pattern in self.resources)
        )


def load_skips(path: Path = SKIPS) -> list[Skip]:
    """The justified findings; each entry needs a check, resource patterns and a reason."""
    entries = yaml.safe_load(path.read_text()) or []
    skips = []
    for index, entry in enumerate(entries):
        missing = [key for key in ("check", "resources", "reason") if not entry.get(key)]
        if missing:
            raise ValueError(f"{path.name} entry {index + 1}: missing {', '.join(missing)}")
        stacks = tuple(entry.get("stacks") or STACKS)
        unknown = sorted(set(stacks) - set(STACKS))
        if unknown:
            raise ValueError(f"{path.name} entry {index + 1}: unknown stacks {unknown}")
        reason = " ".join(str(entry["reason"]).split())
        skips.append(Skip(entry["check"], tuple(entry["resources"]), reason, stacks))
    return skips


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)

    def unjustified(self, skips: list[Skip]) -> list[Finding]:
        return [f for f in self.findings if not any(s.matches(f) for s in skips)]

    def stale(self, skips: list[Skip]) -> list[Skip]:
        return [s for s in skips if not any(s.matches(f) for f in self.findings)]


def run_checkov(directory: Path, framework: str) -> list[dict[str, Any]]:
    if not CHECKOV.exists():
        raise FileNotFoundError(
            f"{CHECKOV} is missing: run scripts/prereq.d/60-checkov.sh (./run test does)"
        )
    target = (
        ["-d", str(directory)]
        if framework == "kubernetes"
        else ["-f", str(directory / "plan.json")]
    )
    completed = subprocess.run(
        [
            str(CHECKOV),
            *target,
            "--framework",
            framework,
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
            "--no-fail-on-crash",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode not in (0, 1) or not completed.stdout.strip():
        raise RuntimeError(f"checkov failed ({completed.returncode}):\n{completed.stderr[-2000:]}")
    report = json.loads(completed.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = []
    for one in reports:
        if isinstance(one, dict):
            failed += (one.get("results") or {}).get("failed_checks") or []
    return failed


def scan_plan(
    stack: str, resources: list[dict[str, Any]], manifests: list[dict[str, Any]], workdir: Path
) -> ScanResult:
    """checkov's failed checks for one evaluated stack."""
    result = ScanResult()
    manifest_dir = workdir / stack / "manifests"
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for index, manifest in enumerate(manifests):
        (manifest_dir / f"{index:03d}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    runs = [(manifest_dir, "kubernetes")]
    document, result.untranslated = terraform_plan(resources)
    if document["planned_values"]["root_module"]["resources"]:
        gcp_dir = workdir / stack / "gcp"
        gcp_dir.mkdir(parents=True, exist_ok=True)
        (gcp_dir / "plan.json").write_text(json.dumps(document, indent=1))
        runs.append((gcp_dir, "terraform_plan"))
    for directory, framework in runs:
        for failed in run_checkov(directory, framework):
            result.findings.append(
                Finding(
                    stack=stack,
                    check=failed["check_id"],
                    title=failed.get("check_name", ""),
                    resource=failed["resource"],
                )
            )
    return result


def scan_stacks(stacks: tuple[str, ...] = STACKS) -> ScanResult:
    from stacks import plan

    combined = ScanResult()
    with tempfile.TemporaryDirectory(prefix="hacelery-scan-") as scratch:
        for stack in stacks:
            evaluated = plan.evaluate(stack)
            resources = [r.to_json() for r in evaluated.resources]
            one = scan_plan(stack, resources, evaluated.manifests(), Path(scratch))
            combined.findings += one.findings
            combined.untranslated += [f"{stack}: {token}" for token in one.untranslated]
    return combined


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.scan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stack",
        action="append",
        choices=STACKS,
        help="a stack to scan (repeatable; default: all)",
    )
    arguments = parser.parse_args(argv)
    skips = load_skips()
    result = scan_stacks(tuple(arguments.stack or STACKS))
    justified = len(result.findings) - len(result.unjustified(skips))
    print(
        f"checkov: {len(result.findings)} failed checks, {justified} justified in "
        f"{SKIPS.relative_to(ROOT)}"
    )
    problems = 0
    for finding in result.unjustified(skips):
        print(f"  unjustified: {finding}")
        problems += 1
    if not arguments.stack:
        for skip in result.stale(skips):
            print(f"  stale skip: {skip.check} {list(skip.resources)} matches no finding")
            problems += 1
    for token in result.untranslated:
        print(f"  not scanned (no Terraform twin in stacks/scan.py): {token}")
        problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
