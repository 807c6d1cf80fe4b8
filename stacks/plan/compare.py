"""The offline change review: what `pulumi up` would do to go from an earlier plan to this one.

    ./run plan prod --compare build/plan/prod-main [--accept-risk]

Matches resources by URN and, for each, says create / update / replace / delete (or options: a
change of protect, retainOnDelete, timeouts... that touches nothing in the cloud). An update
becomes a replacement exactly when the provider says so: the changed input paths are checked
against the providers' own force-new rules (``force_new``) and against the resource's
``replaceOnChanges``; paths in its ``ignoreChanges`` are left out, as the engine and the
providers do. A deleted and a created resource of the same type under the same component (a
Job named after a new run id) are shown as one replacement under a new name.

Each replacement or deletion of something that holds data or serves traffic is marked
**data at risk** (a StatefulSet with volumes, a claim, a namespace, the bucket, the cluster, the
backup encryption key) or **outage** (the cluster, a node pool, the DNS zone, the global address,
the network, a Deployment or Service replaced under the same name, a Secret deleted before its
replacement exists, a regenerated credential). Updates the API refuses (a claim that would
shrink) are marked **refused**. ``review`` returns every change; ``exit_code`` is 4 when any is
marked at risk and ``--accept-risk`` was not given, 5 when any is refused (no flag makes it work).

Reads two plans (``resources.json``); registers nothing and never talks to a cloud. The rules of
the providers live in ``force_new``; this module applies them and judges what they mean here.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from infra.quantities import QUANTITY, quantity_bytes
from stacks.plan.engine import OPTION_KEYS, SECRET, default_options
from stacks.plan.force_new import (
    CONDITIONAL_RULES,
    MISSING,
    Path,
    Rule,
    forcing_rules,
    format_path,
    is_prefix,
    parse_path,
    rules_for,
)

DATA_AT_RISK = "data at risk"
OUTAGE = "outage"
REFUSED = "refused"
RISKS = (DATA_AT_RISK, OUTAGE)
"""Risks that stop the review unless acknowledged (``--accept-risk``)."""

EXIT_RISK = 4
EXIT_REFUSED = 5

ACTIONS = ("replace", "delete", "create", "update", "options")


@dataclass(frozen=True)
class PathChange:
    path: Path
    old: Any
    new: Any

    @property
    def text(self) -> str:
        return format_path(self.path)

    def describe(self) -> str:
        old, new = self.old, self.new
        if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > 60:
            # Long strings (image references, config files) differ somewhere in the middle:
            # show them from a little before the first difference.
            pairs = enumerate(zip(old, new, strict=False))
            start = next((i for i, (a, b) in pairs if a != b), min(len(old), len(new)))
            start = max(0, start - 12)
            if start:
                old, new = "..." + old[start:], "..." + new[start:]
        return f"{self.text}: {_short(old)} -> {_short(new)}"


@dataclass(frozen=True)
class Risk:
    kind: str
    """``data at risk``, ``outage`` or ``refused``."""
    reason: str


@dataclass
class Change:
    """What `pulumi up` does to one resource."""

    action: str
    type: str
    name: str
    urn: str
    old_name: str | None = None
    """Set when a replacement comes under a new name (a deleted and a created resource)."""
    paths: list[PathChange] = field(default_factory=list)
    forced_by: list[str] = field(default_factory=list)
    """The rules (path and provider source) that make this a replacement."""
    delete_first: bool = False
    """The old resource is deleted before its replacement exists (same name, or asked for)."""
    rolling_restart: bool = False
    """The pod template changed: pods are replaced one at a time."""
    protected: bool = False
    risks: list[Risk] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def risk_kinds(self) -> set[str]:
        return {risk.kind for risk in self.risks}

    @property
    def blocking(self) -> bool:
        return bool(self.risk_kinds & set(RISKS))

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "type": self.type,
            "name": self.name,
            "oldName": self.old_name,
            "urn": self.urn,
            "paths": [c.text for c in self.paths],
            "forcedBy": self.forced_by,
            "deleteFirst": self.delete_first,
            "rollingRestart": self.rolling_restart,
            "protected": self.protected,
            "risks": [{"kind": r.kind, "reason": r.reason} for r in self.risks],
            "notes": self.notes,
        }


@dataclass
class Review:
    changes: list[Change]
    warnings: list[str] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(change.action for change in self.changes)

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def at_risk(self) -> list[Change]:
        return [c for c in self.changes if c.blocking]

    def refused(self) -> list[Change]:
        return [c for c in self.changes if REFUSED in c.risk_kinds]

    def exit_code(self, accept_risk: bool) -> int:
        if self.refused():
            return EXIT_REFUSED
        if self.at_risk() and not accept_risk:
            return EXIT_RISK
        return 0


# --------------------------------------------------------------------------- loading


class PlanDirError(ValueError):
    """An earlier plan directory that cannot be compared; the message says how to make one."""


def load_resources(directory: FilePath) -> list[dict[str, Any]]:
    """``resources.json`` of an earlier plan (``./run plan STACK --out DIR``)."""
    path = directory / "resources.json"
    if not path.is_file():
        raise PlanDirError(
            f"--compare {directory}: no resources.json there. Write the earlier plan first, e.g. "
            f"on the earlier revision: ./run plan STACK --out {directory}")
    try:
        resources = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PlanDirError(f"--compare {directory}: resources.json is not JSON ({error}); "
                           "write it again with ./run plan STACK --out DIR") from None
    if not isinstance(resources, list) or not all(
            isinstance(r, dict) and {"urn", "type", "name", "inputs"} <= set(r)
            for r in resources):
        raise PlanDirError(f"--compare {directory}: resources.json is not a plan's resource "
                           "list; write it again with ./run plan STACK --out DIR")
    return resources


def stack_of(resources: Iterable[Mapping[str, Any]]) -> str | None:
    for resource in resources:
        # urn:pulumi:STACK::PROJECT::TYPE::NAME
        parts = str(resource["urn"]).split("::")
        if parts and parts[0].startswith("urn:pulumi:"):
            return parts[0][len("urn:pulumi:"):]
    return None


# --------------------------------------------------------------------------- diffing


def diff_values(old: Any, new: Any, path: Path = ()) -> list[PathChange]:
    """Leaf-level differences between two JSON values (absent keys are ``MISSING``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[PathChange] = []
        for key in sorted(set(old) | set(new)):
            changes += diff_values(old.get(key, MISSING), new.get(key, MISSING), (*path, key))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for index in range(max(len(old), len(new))):
            changes += diff_values(old[index] if index < len(old) else MISSING,
                                   new[index] if index < len(new) else MISSING,
                                   (*path, index))
        return changes
    if old is MISSING and new is MISSING:
        return []
    if old == new and type(old) is type(new):
        return []
    return [PathChange(path, old, new)]


def secret_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[PathChange]:
    """Secrets whose digest changed (their text is ``"[secret]"`` on both sides)."""
    old_digests = old.get("secretDigests") or {}
    new_digests = new.get("secretDigests") or {}
    changes = []
    for key in sorted(set(old_digests) & set(new_digests)):
        if old_digests[key] != new_digests[key]:
            changes.append(PathChange(parse_path(key), SECRET, SECRET + " (changed)"))
    return changes


def _ignored(path: Path, ignore_paths: Sequence[Path]) -> bool:
    return any(is_prefix(ignore, path) for ignore in ignore_paths)


def _options(resource: Mapping[str, Any]) -> dict[str, Any]:
    options = default_options()
    options.update(resource.get("options") or {})
    return options


# --------------------------------------------------------------------------- what it means

_STATEFUL_WORKLOADS = {"kubernetes:apps/v1:StatefulSet"}
_POD_WORKLOADS = {"kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                  "kubernetes:apps/v1:DaemonSet"}
_TRAFFIC_K8S = {"kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service",
                "kubernetes:networking.k8s.io/v1:Ingress", "kubernetes:apps/v1:DaemonSet"}
_CONFIG_K8S = {"kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap"}

_OUTAGE_TYPES = {
    "gcp:container/nodePool:NodePool":
        "the pool's nodes are drained and recreated; pods move or wait for capacity",
    "gcp:dns/managedZone:ManagedZone":
        "a new zone gets new name servers and DNSSEC keys: the registrar's delegation and DS "
        "record stop matching, so the domain stops resolving until they are updated",
    "gcp:dns/recordSet:RecordSet": "the record is missing between the delete and the create",
    "gcp:compute/globalAddress:GlobalAddress":
        "the web entry gets a new IP; resolvers keep the old one until the TTL passes",
    "gcp:compute/network:Network": "the cluster's network: everything on it is rebuilt",
    "gcp:compute/subnetwork:Subnetwork": "the cluster's subnet: everything on it is rebuilt",
    "gcp:compute/router:Router": "private nodes lose Cloud NAT (image pulls fail) meanwhile",
    "gcp:compute/routerNat:RouterNat": "private nodes lose Cloud NAT (image pulls fail) meanwhile",
    "random:index/randomPassword:RandomPassword":
        "a new generated credential: the server and every client that holds the old one "
        "disagree until all of them restart",
    "kubernetes:helm.sh/v3:Release":
        "KEDA is uninstalled and installed again: no queue-depth scaling meanwhile",
}
_DATA_TYPES = {
    "gcp:storage/bucket:Bucket": "the backup bucket: every base backup and WAL segment in it",
    "gcp:container/cluster:Cluster":
        "the GKE cluster: every workload, volume and the data on them goes with it",
    "kubernetes:core/v1:PersistentVolumeClaim":
        "a claim: with reclaim policy Delete its disk, and the data on it, is deleted",
    "kubernetes:core/v1:Namespace":
        "deleting a namespace deletes everything in it, claims included (and, with reclaim "
        "policy Delete, their disks)",
    "tls:index/privateKey:PrivateKey":
        "the backup encryption key: backups taken with the old key need the old private key, "
        "which the stack's state stops holding",
    "pulumi:providers:kubernetes":
        "the Kubernetes provider points at another cluster: every Kubernetes object of the "
        "stack is created there and deleted here",
}


def quantity_bytes_or_none(value: Any) -> int | None:
    if isinstance(value, str) and QUANTITY.match(value):
        return quantity_bytes(value)
    return None


def _has_volumes(resource: Mapping[str, Any]) -> bool:
    spec = (resource.get("inputs") or {}).get("spec") or {}
    return bool(spec.get("volumeClaimTemplates"))


def assess(change: Change, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    """Fill in the change's risks and notes (replacement or deletion of what holds data or
    serves traffic; updates the API refuses; what an in-place update does to running pods)."""
    typ = change.type
    options = _options(old) if old is not None else default_options()
    change.protected = bool(options["protect"]) and change.action in ("replace", "delete")
    if change.protected:
        change.notes.append(
            "protected: `pulumi up` stops with an error before deleting it (set "
            "ha-celery:protect to false and `pulumi up` first, see the README)")
    retained = bool(options["retainOnDelete"])

    if change.action in ("replace", "delete"):
        if change.action == "delete" and retained:
            change.notes.append("retainOnDelete: leaves the stack but stays in the "
                                "cluster/project, data and all")
        elif typ in _STATEFUL_WORKLOADS and old is not None and _has_volumes(old):
            change.risks.append(Risk(DATA_AT_RISK, (
                "a StatefulSet with volumes: every pod goes at once; the claims stay (retention "
                "Retain) but come back at their old size, and under another name they are new "
                "and empty")))
            change.risks.append(Risk(OUTAGE, "all of its pods are down together"))
        elif typ in _DATA_TYPES:
            change.risks.append(Risk(DATA_AT_RISK, _new_storage_class(old, new)
                                     or _DATA_TYPES[typ]))
            if typ in ("gcp:container/cluster:Cluster", "pulumi:providers:kubernetes",
                       "kubernetes:core/v1:Namespace"):
                change.risks.append(Risk(OUTAGE, "everything running there stops"))
        elif (typ == "gcp:container/nodePool:NodePool" and change.action == "replace"
              and not change.delete_first):
            change.notes.append("the new pool is created first; GKE then drains the old one "
                                "(PodDisruptionBudgets respected) and deletes it")
        elif typ in _OUTAGE_TYPES:
            change.risks.append(Risk(OUTAGE, _OUTAGE_TYPES[typ]))
        elif typ in _STATEFUL_WORKLOADS or typ in _TRAFFIC_K8S:
            if change.action == "delete":
                change.risks.append(Risk(OUTAGE, "it stops serving"))
            elif change.delete_first:
                change.risks.append(Risk(OUTAGE, (
                    "same name: the old one is deleted (with all its pods) before the new one "
                    "exists")))
        elif typ in _CONFIG_K8S and change.action == "replace" and change.delete_first:
            change.risks.append(Risk(OUTAGE, (
                "deleted before its replacement exists: a pod that starts meanwhile cannot "
                "mount or read it")))

    if change.action == "update" and new is not None:
        if typ in _POD_WORKLOADS and any(
                c.path[:2] == ("spec", "template") for c in change.paths):
            change.rolling_restart = True
            change.notes.append("rolling restart: the pods are replaced one at a time")
        if typ == "kubernetes:core/v1:PersistentVolumeClaim":
            for path_change in change.paths:
                if path_change.path == ("spec", "resources", "requests", "storage"):
                    before = quantity_bytes_or_none(path_change.old)
                    after = quantity_bytes_or_none(path_change.new)
                    if before is not None and after is not None and after < before:
                        change.risks.append(Risk(REFUSED, (
                            f"Kubernetes refuses to shrink a claim ({path_change.old} -> "
                            f"{path_change.new}); set the size back")))
                    else:
                        change.notes.append(
                            "in place: the claim and its file system expand online (the "
                            "StorageClass must allow volume expansion; GKE's do)")
        if typ in _CONFIG_K8S:
            change.notes.append("updated in place; pods pick it up when their template's "
                                "checksum annotation rolls them")
    if change.action == "update" and typ in CONDITIONAL_RULES:
        change.notes.append(f"provider rule to check: {CONDITIONAL_RULES[typ]}")


def _new_storage_class(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
                       ) -> str | None:
    """The reason to give when a claim is replaced because its StorageClass changed (a zonal
    disk moving to a regional one, say): the new claim is a new, empty disk."""
    if old is None or new is None or old.get("type") != "kubernetes:core/v1:PersistentVolumeClaim":
        return None
    before, after = ((r.get("inputs") or {}).get("spec", {}).get("storageClassName")
                     for r in (old, new))
    if before == after:
        return None
    return (f"a new StorageClass ({before or 'the default'} -> {after or 'the default'}) makes "
            "a new, empty disk: the data stays on the old disk only. Move it by restoring the "
            "latest backup into the new claim (README: \"Moving the database to a regional "
            "disk\")")


def _is_named_same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """The replacement would carry the same name as the old resource (so one of them must go
    first: Kubernetes objects by metadata.name+namespace, cloud resources by their name)."""
    old_inputs, new_inputs = old.get("inputs") or {}, new.get("inputs") or {}
    if str(new.get("type", "")).startswith("kubernetes:"):
        old_meta, new_meta = old_inputs.get("metadata") or {}, new_inputs.get("metadata") or {}
        return bool(new_meta.get("name")) and (old_meta.get("name"), old_meta.get("namespace")) \
            == (new_meta.get("name"), new_meta.get("namespace"))
    for key in ("name", "accountId", "repositoryId"):
        if new_inputs.get(key) and old_inputs.get(key) == new_inputs.get(key):
            return True
    return False


def _provider_inputs(resources: Mapping[str, Mapping[str, Any]],
                     resource: Mapping[str, Any]) -> Mapping[str, Any]:
    provider = resources.get(resource.get("provider") or "")
    return (provider or {}).get("inputs") or {}


def compare_resource(old: Mapping[str, Any], new: Mapping[str, Any],
                     new_by_urn: Mapping[str, Mapping[str, Any]]) -> Change | None:
    """The change of one resource present in both plans, or None when nothing changes."""
    options = _options(new)
    ignore = [parse_path(p) for p in options["ignoreChanges"]]
    paths = diff_values(old.get("inputs") or {}, new.get("inputs") or {}) + secret_changes(
        old, new)
    paths = [c for c in paths if not _ignored(c.path, ignore)]
    old_options = _options(old)
    option_changes = [key for key in OPTION_KEYS if key != "dependsOn"
                      and "options" in old and old_options[key] != options[key]]
    change = Change(action="update", type=new["type"], name=new["name"], urn=new["urn"],
                    paths=paths)
    if not paths:
        if not option_changes:
            return None
        change.action = "options"
        change.notes.append("options only (" + ", ".join(
            f"{key}: {_short(old_options[key])} -> {_short(options[key])}"
            for key in option_changes) + "); nothing changes in the cloud")
        return change

    rules = rules_for(new["type"], new.get("inputs") or {}, _provider_inputs(new_by_urn, new))
    replace_on = [Rule(parse_path(p), "replaceOnChanges option")
                  for p in options["replaceOnChanges"]]
    forced: dict[str, None] = {}
    if rules is None:
        change.notes.append(f"no force-new rules known for {new['type']}: classified as an "
                            "update; check the provider's documentation")
        rules = []
    for path_change in paths:
        for rule in forcing_rules([*rules, *replace_on], path_change.path, path_change.old,
                                  path_change.new):
            forced[f"{path_change.text} (rule {rule.text}: {rule.source})"] = None
    if forced:
        change.action = "replace"
        change.forced_by = list(forced)
        explicit = options["deleteBeforeReplace"]
        change.delete_first = bool(explicit) if explicit is not None else _is_named_same(old, new)
        if change.delete_first:
            change.notes.append("deleted before its replacement is created (same name)")
    if option_changes:
        change.notes.append("options: " + ", ".join(option_changes))
    return change


def review(old_resources: Sequence[Mapping[str, Any]],
           new_resources: Sequence[Mapping[str, Any]]) -> Review:
    """Every change from the earlier plan to the new one, classified and assessed."""
    skip = {"pulumi:pulumi:Stack"}
    old_by_urn = {r["urn"]: r for r in old_resources if r["type"] not in skip}
    new_by_urn = {r["urn"]: r for r in new_resources if r["type"] not in skip}
    result = Review(changes=[])
    if any("options" not in r for r in old_by_urn.values()):
        result.warnings.append(
            "the earlier plan records no resource options (written before options were "
            "recorded): option changes are not shown")
    if any("secretDigests" not in r for r in old_by_urn.values()):
        result.warnings.append(
            "the earlier plan records no secret digests: changed secret values are not shown")

    created = [new_by_urn[u] for u in sorted(set(new_by_urn) - set(old_by_urn))]
    deleted = [old_by_urn[u] for u in sorted(set(old_by_urn) - set(new_by_urn))]
    paired = _pair_renames(deleted, created, old_by_urn, new_by_urn)
    for old, new in paired:
        change = Change(action="replace", type=new["type"], name=new["name"], urn=new["urn"],
                        old_name=old["name"],
                        notes=[f"replaces {old['name']} under a new name: the new one is "
                               "created first, then the old one is deleted"])
        assess(change, old, new)
        result.changes.append(change)
    paired_urns = {o["urn"] for o, _ in paired} | {n["urn"] for _, n in paired}
    for new in created:
        if new["urn"] not in paired_urns:
            change = Change(action="create", type=new["type"], name=new["name"], urn=new["urn"])
            assess(change, None, new)
            result.changes.append(change)
    for old in deleted:
        if old["urn"] not in paired_urns:
            change = Change(action="delete", type=old["type"], name=old["name"], urn=old["urn"])
            assess(change, old, None)
            result.changes.append(change)
    for urn in sorted(set(old_by_urn) & set(new_by_urn)):
        change = compare_resource(old_by_urn[urn], new_by_urn[urn], new_by_urn)
        if change is not None:
            assess(change, old_by_urn[urn], new_by_urn[urn])
            result.changes.append(change)
    result.changes.sort(key=lambda c: (ACTIONS.index(c.action), c.type, c.name))
    return result


def _pair_renames(deleted: Sequence[Mapping[str, Any]], created: Sequence[Mapping[str, Any]],
                  old_by_urn: Mapping[str, Mapping[str, Any]],
                  new_by_urn: Mapping[str, Mapping[str, Any]]) -> list[tuple[Mapping, Mapping]]:
    """A deleted and a created resource of one type under the same parent, when the parent
    holds exactly one of that type before and after: one thing under a new name."""

    def count(resources: Mapping[str, Mapping[str, Any]]) -> Counter:
        return Counter((r.get("parent"), r["type"]) for r in resources.values())

    before, after = count(old_by_urn), count(new_by_urn)
    by_key: dict[tuple, list] = defaultdict(list)
    for resource in created:
        by_key[(resource.get("parent"), resource["type"])].append(resource)
    pairs = []
    for resource in deleted:
        key = (resource.get("parent"), resource["type"])
        if before[key] == 1 and after[key] == 1 and len(by_key[key]) == 1:
            pairs.append((resource, by_key[key][0]))
    return pairs


# --------------------------------------------------------------------------- report


def _short(value: Any, limit: int = 60) -> str:
    if value is MISSING:
        return "(absent)"
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render(result: Review, *, before: str, after: str, accept_risk: bool,
           max_paths: int = 6) -> str:
    """The review as text, one block per changed resource, then a summary line."""
    lines = [f"change review: {before} -> {after}"]
    lines += [f"  note: {warning}" for warning in result.warnings]
    if not result.changes:
        lines.append("  no changes: `pulumi up` would leave every resource as it is")
    for change in result.changes:
        flags = sorted(change.risk_kinds, key=lambda k: (DATA_AT_RISK, OUTAGE, REFUSED).index(k))
        label = f"  {change.action:8} {change.type}  {change.name}"
        if change.old_name:
            label += f" (was {change.old_name})"
        if flags:
            label += "  [" + ", ".join(flag.upper() for flag in flags) + "]"
        lines.append(label)
        for forced in change.forced_by[:max_paths]:
            lines.append(f"             forces replacement: {forced}")
        shown = [c for c in change.paths if change.action != "replace"
                 or not any(f.startswith(c.text + " ") for f in change.forced_by)]
        for path_change in shown[:max_paths]:
            lines.append(f"             {path_change.describe()}")
        if len(shown) > max_paths:
            lines.append(f"             ... and {len(shown) - max_paths} more changed inputs")
        for risk in change.risks:
            lines.append(f"             {risk.kind}: {risk.reason}")
        for note in change.notes:
            lines.append(f"             {note}")
    counts = result.counts
    summary = ", ".join(f"{counts[action]} {action}" for action in ACTIONS if counts[action])
    lines.append(f"summary: {summary or 'no changes'}; "
                 f"{len(result.at_risk())} at risk, {len(result.refused())} refused")
    if result.refused():
        lines.append(f"error: {len(result.refused())} change(s) the API refuses; fix the "
                     "settings (no flag makes them work)")
    elif result.at_risk():
        if accept_risk:
            lines.append(f"accepted: {len(result.at_risk())} change(s) with data at risk or an "
                         "outage (--accept-risk)")
        else:
            lines.append(f"error: {len(result.at_risk())} change(s) put data at risk or cause an "
                         "outage; review them, then run again with --accept-risk to go ahead")
    return "\n".join(lines)


def write_changes(result: Review, path: FilePath) -> None:
    path.write_text(json.dumps({"warnings": result.warnings,
                                "changes": [c.to_json() for c in result.changes]},
                               indent=2) + "\n")
