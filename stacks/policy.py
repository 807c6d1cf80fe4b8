"""Offline admission checks the plan applies to every Kubernetes manifest.

Owns two rule sets, as pure functions on manifest dicts:
- the Pod Security Standard `restricted` (policy version `latest`), which the platform's
  namespace enforces: finding a violation here is cheaper than a rejected `pulumi up`;
- the platform's own rule that every container declares CPU and memory requests and a memory
  limit (without them the scheduler overcommits nodes and a backup can starve the database).

Does not check anything a schema already checks, and does not know about specific workloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload manifest, or None for objects that run no pods."""
    kind = manifest.get("kind")
    spec = manifest.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in _POD_TEMPLATE_KINDS:
        return ((spec.get("template") or {}).get("spec")) or {}
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return ((job.get("template") or {}).get("spec")) or {}
    return None


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


def pod_security_violations(manifest: dict[str, Any]) -> list[str]:
    """Every way the manifest's pods break the `restricted` standard (empty when compliant)."""
    spec = pod_spec(manifest)
    if spec is None:
        return []
    problems: list[str] = []
    pod_context = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"spec.{flag} must not be true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(
                f"volume {volume.get('name')!r} uses {sorted(kinds - ALLOWED_VOLUME_TYPES)}; "
                f"allowed types: {', '.join(sorted(ALLOWED_VOLUME_TYPES))}"
            )
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')!r} is not in the safe set")
    if pod_context.get("runAsUser") == 0:
        problems.append("securityContext.runAsUser must not be 0")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ALLOWED_SECCOMP:
        problems.append(f"securityContext.seccompProfile.type {pod_seccomp!r} is not allowed")

    for where, container in _containers(spec):
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{where}: privileged must not be true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: securityContext.capabilities.drop must include ALL")
        added = set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES
        if added:
            problems.append(f"{where}: capabilities.add {sorted(added)} not allowed")
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if context.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser must not be 0")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ALLOWED_SECCOMP:
            problems.append(
                f"{where}: seccompProfile.type must be RuntimeDefault or Localhost "
                "(pod or container)"
            )
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort {port['hostPort']} not allowed")
        if context.get("procMount") not in (None, "Default"):
            problems.append(f"{where}: procMount must be Default")
    return problems


def resource_violations(manifest: dict[str, Any]) -> list[str]:
    """Containers missing a CPU request, a memory request or a memory limit."""
    spec = pod_spec(manifest)
    if spec is None:
        return []
    problems = []
    for where, container in _containers(spec):
        if where.startswith("ephemeralContainers"):
            continue
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
            problems.append(f"{where}: set resources {', '.join(missing)}")
    return problems
