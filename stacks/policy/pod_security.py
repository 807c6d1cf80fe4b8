"""The Pod Security Standards, `baseline` and `restricted`, as pure checks on manifest dicts.

Owns one table, ``CONTROLS``: every control of the Pod Security Admission controller with its
level, the Kubernetes minor version each variant of it applies from, the control it overrides,
and a link to the upstream check it mirrors (``kubernetes/pod-security-admission``,
``policy/check_<id>.go``). ``pod_security_violations`` evaluates a manifest the way the API server
of a given version does for a namespace labelled ``enforce: <level>``: the platform's namespace
enforces `restricted` at ``enforce-version: latest``, so the plan checks at the stack's
``kubernetesVersion`` and at the newest version this table knows (a release channel upgrades the
control plane; newer versions add controls such as the probe-host check of 1.34).

Does not own: which resources hold pods (``pod_template``), the resource rule
(``stacks.policy.resources``), or how violations are reported (the CrossGuard pack in
``stacks.policy.pack``, which the offline plan and ``pulumi preview --policy-pack`` both run).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Version = tuple[int, int]
LATEST: Version = (1, 37)
"""The newest Kubernetes minor version whose Pod Security rules this table mirrors."""
OLDEST: Version = (1, 25)
"""The oldest the platform supports (the stack setting's lower bound)."""
LEVELS = ("baseline", "restricted")
DOCS = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
SOURCE = "https://github.com/kubernetes/pod-security-admission/blob/master/policy/"

Spec = dict[str, Any]
Metadata = dict[str, Any]
Check = Callable[[Metadata, Spec], "str | None"]
"""Returns why the pod is forbidden, or None when the control allows it."""


def parse_version(value: str | Version) -> Version:
    """``"1.33"`` -> (1, 33); ``"latest"`` -> ``LATEST``."""
    if isinstance(value, tuple):
        return value
    if value == "latest":
        return LATEST
    match = re.fullmatch(r"1\.(\d{1,2})", str(value))
    if match is None:
        raise ValueError(f"kubernetes version: got {value!r}; expected '1.NN' or 'latest'")
    return (1, int(match.group(1)))


# ------------------------------------------------------------------------- pod structure


def pod_template(manifest: dict[str, Any]) -> tuple[Metadata, Spec] | None:
    """The pod metadata and spec a manifest creates pods from; None for objects without pods."""
    kind = manifest.get("kind")
    spec = manifest.get("spec") or {}
    if kind == "Pod":
        return manifest.get("metadata") or {}, spec
    if kind in (
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "ReplicationController",
    ):
        template = spec.get("template") or {}
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    else:
        return None
    return template.get("metadata") or {}, template.get("spec") or {}


def containers(spec: Spec) -> Iterator[dict[str, Any]]:
    """Init, regular and ephemeral containers, in the order the API server visits them."""
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field_name) or []


def _context(container_or_spec: dict[str, Any], key: str = "securityContext") -> dict[str, Any]:
    return container_or_spec.get(key) or {}


def _names(items: list[str]) -> str:
    quoted = ", ".join(f'"{item}"' for item in items)
    return f"{'container' if len(items) == 1 else 'containers'} {quoted}"


def _setters(pod_bad: bool, bad_containers: list[str]) -> str:
    parts = (["pod"] if pod_bad else []) + ([_names(bad_containers)] if bad_containers else [])
    return " and ".join(parts)


def _user_namespace(spec: Spec) -> bool:
    # KEP-127: a pod with its own user namespace (hostUsers: false) is exempt from the
    # root-related controls from 1.35 on.
    return spec.get("hostUsers") is False


def _windows(spec: Spec) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


# ----------------------------------------------------------------------- baseline checks


def host_process(_metadata: Metadata, spec: Spec) -> str | None:
    def set_(context: dict[str, Any]) -> bool:
        return (context.get("windowsOptions") or {}).get("hostProcess") is True

    bad = [c.get("name") for c in containers(spec) if set_(_context(c))]
    pod_bad = set_(_context(spec))
    if pod_bad or bad:
        return (
            f"{_setters(pod_bad, bad)} must not set securityContext.windowsOptions.hostProcess=true"
        )
    return None


def host_namespaces(_metadata: Metadata, spec: Spec) -> str | None:
    shared = [f"{flag}=true" for flag in ("hostNetwork", "hostPID", "hostIPC") if spec.get(flag)]
    return f"pod must not set {', '.join(shared)}" if shared else None


def privileged(_metadata: Metadata, spec: Spec) -> str | None:
    bad = [c.get("name") for c in containers(spec) if _context(c).get("privileged") is True]
    return f"{_names(bad)} must not set securityContext.privileged=true" if bad else None


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def capabilities_baseline(_metadata: Metadata, spec: Spec) -> str | None:
    bad, added = [], set()
    for container in containers(spec):
        extra = set((_context(container).get("capabilities") or {}).get("add") or [])
        extra -= BASELINE_CAPABILITIES
        if extra:
            bad.append(container.get("name"))
            added |= extra
    if bad:
        return (
            f"{_names(bad)} must not include {', '.join(sorted(added))} in "
            "securityContext.capabilities.add"
        )
    return None


def host_path_volumes(_metadata: Metadata, spec: Spec) -> str | None:
    bad = [v.get("name") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    return f"volumes {bad} must not use hostPath" if bad else None


def host_ports(_metadata: Metadata, spec: Spec) -> str | None:
    bad, ports = [], set()
    for container in containers(spec):
        used = {p.get("hostPort") for p in container.get("ports") or [] if p.get("hostPort")}
        if used:
            bad.append(container.get("name"))
            ports |= used
    if bad:
        return f"{_names(bad)} must not use hostPort {', '.join(map(str, sorted(ports)))}"
    return None


def app_armor(metadata: Metadata, spec: Spec) -> str | None:
    allowed_types = {"RuntimeDefault", "Localhost"}
    bad_values: set[str] = set()

    def bad_type(context: dict[str, Any]) -> bool:
        profile = context.get("appArmorProfile")
        if profile is None:
            return False
        if profile.get("type") not in allowed_types:
            bad_values.add(str(profile.get("type")))
            return True
        return False

    pod_bad = bad_type(_context(spec))
    bad = [c.get("name") for c in containers(spec) if bad_type(_context(c))]
    annotations = [
        f"{key}={value!r}"
        for key, value in sorted((metadata.get("annotations") or {}).items())
        if key.startswith("container.apparmor.security.beta.kubernetes.io/")
        and not (not value or value == "runtime/default" or str(value).startswith("localhost/"))
    ]
    setters = _setters(pod_bad, bad)
    if annotations:
        setters = " and ".join(filter(None, [setters, "annotations"]))
    if setters:
        values = sorted(bad_values) + annotations
        return f"{setters} must not set the AppArmor profile to {', '.join(values)}"
    return None


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux(allowed_types: frozenset[str]) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        problems: set[str] = set()

        def bad(context: dict[str, Any]) -> bool:
            options = context.get("seLinuxOptions")
            if options is None:
                return False
            found = False
            if (options.get("type") or "") not in allowed_types:
                problems.add(f"type {options.get('type')!r} is not allowed")
                found = True
            for key in ("user", "role"):
                if options.get(key):
                    problems.add(f"{key} may not be set")
                    found = True
            return found

        pod_bad = bad(_context(spec))
        bad_containers = [c.get("name") for c in containers(spec) if bad(_context(c))]
        if pod_bad or bad_containers:
            return (
                f"{_setters(pod_bad, bad_containers)} set forbidden "
                f"securityContext.seLinuxOptions: {'; '.join(sorted(problems))}"
            )
        return None

    return check


def _proc_mount(relax_for_user_namespaces: bool) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        if relax_for_user_namespaces and _user_namespace(spec):
            return None
        bad = [
            c.get("name")
            for c in containers(spec)
            if _context(c).get("procMount") not in (None, "Default")
        ]
        return (
            f"{_names(bad)} must not set securityContext.procMount (only Default)" if bad else None
        )

    return check


def seccomp_baseline(_metadata: Metadata, spec: Spec) -> str | None:
    def bad(context: dict[str, Any]) -> bool:
        profile = context.get("seccompProfile")
        return profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost")

    pod_bad = bad(_context(spec))
    bad_containers = [c.get("name") for c in containers(spec) if bad(_context(c))]
    if pod_bad or bad_containers:
        return (
            f"{_setters(pod_bad, bad_containers)} must not set "
            "securityContext.seccompProfile.type other than RuntimeDefault or Localhost"
        )
    return None


SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
SYSCTLS_1_37 = SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        names = [s.get("name") for s in _context(spec).get("sysctls") or []]
        forbidden = [name for name in names if name not in allowed]
        return f"forbidden sysctls {', '.join(map(str, forbidden))}" if forbidden else None

    return check


def host_probes_and_lifecycle(_metadata: Metadata, spec: Spec) -> str | None:
    bad, hosts = [], set()
    for container in containers(spec):
        handlers = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        lifecycle = container.get("lifecycle") or {}
        handlers += [lifecycle.get("postStart"), lifecycle.get("preStop")]
        found = {
            (handler.get(kind) or {}).get("host")
            for handler in handlers
            if handler
            for kind in ("httpGet", "tcpSocket")
        } - {None, ""}
        if found:
            bad.append(container.get("name"))
            hosts |= found
    if bad:
        return f"{_names(bad)} must not set a host in probes or lifecycle handlers: {sorted(hosts)}"
    return None


# ----------------------------------------------------------------------- restricted checks


RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def restricted_volumes(_metadata: Metadata, spec: Spec) -> str | None:
    bad, kinds = [], set()
    for volume in spec.get("volumes") or []:
        used = set(volume) - {"name"}
        if not used & RESTRICTED_VOLUME_TYPES:
            bad.append(volume.get("name"))
            kinds |= used or {"unknown"}
    if bad:
        return (
            f"volumes {bad} use restricted volume types {sorted(kinds)}; allowed: "
            f"{', '.join(sorted(RESTRICTED_VOLUME_TYPES))}"
        )
    return None


def _privilege_escalation(exempt_windows: bool) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        if exempt_windows and _windows(spec):
            return None
        bad = [
            c.get("name")
            for c in containers(spec)
            if _context(c).get("allowPrivilegeEscalation") is not False
        ]
        if bad:
            return f"{_names(bad)} must set securityContext.allowPrivilegeEscalation=false"
        return None

    return check


def _run_as_non_root(relax_for_user_namespaces: bool) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        if relax_for_user_namespaces and _user_namespace(spec):
            return None
        pod_value = _context(spec).get("runAsNonRoot")
        explicit = [
            c.get("name") for c in containers(spec) if _context(c).get("runAsNonRoot") is False
        ]
        if pod_value is False or explicit:
            return (
                f"{_setters(pod_value is False, explicit)} must not set "
                "securityContext.runAsNonRoot=false"
            )
        implicit = [
            c.get("name")
            for c in containers(spec)
            if _context(c).get("runAsNonRoot") is None and pod_value is not True
        ]
        if implicit:
            return f"pod or {_names(implicit)} must set securityContext.runAsNonRoot=true"
        return None

    return check


def _run_as_user(relax_for_user_namespaces: bool) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        if relax_for_user_namespaces and _user_namespace(spec):
            return None
        pod_bad = _context(spec).get("runAsUser") == 0
        bad = [c.get("name") for c in containers(spec) if _context(c).get("runAsUser") == 0]
        if pod_bad or bad:
            return f"{_setters(pod_bad, bad)} must not set runAsUser=0"
        return None

    return check


def _seccomp_restricted(exempt_windows: bool) -> Check:
    def check(metadata: Metadata, spec: Spec) -> str | None:
        if exempt_windows and _windows(spec):
            return None
        explicit = seccomp_baseline(metadata, spec)
        if explicit:
            return explicit
        pod_set = _context(spec).get("seccompProfile") is not None
        implicit = [
            c.get("name")
            for c in containers(spec)
            if _context(c).get("seccompProfile") is None and not pod_set
        ]
        if implicit:
            return (
                f"pod or {_names(implicit)} must set securityContext.seccompProfile.type to "
                "RuntimeDefault or Localhost"
            )
        return None

    return check


def _capabilities_restricted(exempt_windows: bool) -> Check:
    def check(_metadata: Metadata, spec: Spec) -> str | None:
        if exempt_windows and _windows(spec):
            return None
        missing_drop, adding, added = [], [], set()
        for container in containers(spec):
            capabilities = _context(container).get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                missing_drop.append(container.get("name"))
            extra = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
            if extra:
                adding.append(container.get("name"))
                added |= extra
        details = []
        if missing_drop:
            details.append(
                f'{_names(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
            )
        if adding:
            details.append(
                f"{_names(adding)} must not include {', '.join(sorted(added))} in "
                "securityContext.capabilities.add (only NET_BIND_SERVICE)"
            )
        return "; ".join(details) or None

    return check


# --------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Control:
    """One Pod Security control: what it restricts, from which version, and where it is defined."""

    id: str
    """The upstream check ID (``policy/check_<source>.go``)."""
    level: str
    title: str
    """The row of the Pod Security Standards page it implements."""
    versions: tuple[tuple[Version, Check], ...]
    """(first Kubernetes version, check) pairs, oldest first; none applies before the first."""
    source: str
    overrides: tuple[str, ...] = ()
    """Baseline controls this one replaces at the restricted level (it is their stricter form)."""

    @property
    def links(self) -> tuple[str, str]:
        return f"{DOCS}#{self.level}", f"{SOURCE}check_{self.source}.go"

    def check_at(self, version: Version) -> Check | None:
        active = None
        for since, check in self.versions:
            if version >= since:
                active = check
        return active


CONTROLS: tuple[Control, ...] = (
    Control(
        "windowsHostProcess",
        "baseline",
        "HostProcess",
        (((1, 0), host_process),),
        "windowsHostProcess",
    ),
    Control(
        "hostNamespaces",
        "baseline",
        "Host Namespaces",
        (((1, 0), host_namespaces),),
        "hostNamespaces",
    ),
    Control(
        "privileged", "baseline", "Privileged Containers", (((1, 0), privileged),), "privileged"
    ),
    Control(
        "capabilities_baseline",
        "baseline",
        "Capabilities",
        (((1, 0), capabilities_baseline),),
        "capabilities_baseline",
    ),
    Control(
        "hostPathVolumes",
        "baseline",
        "HostPath Volumes",
        (((1, 0), host_path_volumes),),
        "hostPathVolumes",
    ),
    Control("hostPorts", "baseline", "Host Ports", (((1, 0), host_ports),), "hostPorts"),
    Control(
        "hostProbesAndHostLifecycle",
        "baseline",
        "Host Probes / Lifecycle Hooks",
        (((1, 34), host_probes_and_lifecycle),),
        "hostProbesAndhostLifecycle",
    ),
    Control("appArmorProfile", "baseline", "AppArmor", (((1, 0), app_armor),), "appArmorProfile"),
    Control(
        "seLinuxOptions",
        "baseline",
        "SELinux",
        (((1, 0), _se_linux(SELINUX_TYPES_1_0)), ((1, 31), _se_linux(SELINUX_TYPES_1_31))),
        "seLinuxOptions",
    ),
    Control(
        "procMount",
        "baseline",
        "/proc Mount Type",
        (((1, 0), _proc_mount(False)), ((1, 35), _proc_mount(True))),
        "procMount_baseline",
    ),
    Control(
        "seccompProfile_baseline",
        "baseline",
        "Seccomp",
        (((1, 19), seccomp_baseline),),
        "seccompProfile_baseline",
    ),
    Control(
        "sysctls",
        "baseline",
        "Sysctls",
        (
            ((1, 0), _sysctls(SYSCTLS_1_0)),
            ((1, 27), _sysctls(SYSCTLS_1_27)),
            ((1, 29), _sysctls(SYSCTLS_1_29)),
            ((1, 32), _sysctls(SYSCTLS_1_32)),
            ((1, 37), _sysctls(SYSCTLS_1_37)),
        ),
        "sysctls",
    ),
    Control(
        "restrictedVolumes",
        "restricted",
        "Volume Types",
        (((1, 0), restricted_volumes),),
        "restrictedVolumes",
        overrides=("hostPathVolumes",),
    ),
    Control(
        "allowPrivilegeEscalation",
        "restricted",
        "Privilege Escalation",
        (((1, 8), _privilege_escalation(False)), ((1, 25), _privilege_escalation(True))),
        "allowPrivilegeEscalation",
    ),
    Control(
        "runAsNonRoot",
        "restricted",
        "Running as Non-root",
        (((1, 0), _run_as_non_root(False)), ((1, 35), _run_as_non_root(True))),
        "runAsNonRoot",
    ),
    Control(
        "runAsUser",
        "restricted",
        "Running as Non-root user",
        (((1, 23), _run_as_user(False)), ((1, 35), _run_as_user(True))),
        "runAsUser",
    ),
    Control(
        "seccompProfile_restricted",
        "restricted",
        "Seccomp",
        (((1, 19), _seccomp_restricted(False)), ((1, 25), _seccomp_restricted(True))),
        "seccompProfile_restricted",
        overrides=("seccompProfile_baseline",),
    ),
    Control(
        "capabilities_restricted",
        "restricted",
        "Capabilities",
        (((1, 22), _capabilities_restricted(False)), ((1, 25), _capabilities_restricted(True))),
        "capabilities_restricted",
        overrides=("capabilities_baseline",),
    ),
    Control(
        "procMount_restricted",
        "restricted",
        "/proc Mount Type",
        (((1, 35), _proc_mount(False)),),
        "procMount_restricted",
        overrides=("procMount",),
    ),
)
CONTROL_IDS = tuple(control.id for control in CONTROLS)


def active_controls(level: str, version: Version) -> list[tuple[Control, Check]]:
    """The controls the API server runs for ``level`` at ``version``, overrides applied."""
    if level not in LEVELS:
        raise ValueError(f"level: got {level!r}; expected one of {', '.join(LEVELS)}")
    wanted = LEVELS[: LEVELS.index(level) + 1]
    active = [
        (c, check)
        for c in CONTROLS
        if c.level in wanted
        if (check := c.check_at(version)) is not None
    ]
    replaced = {overridden for c, _ in active for overridden in c.overrides}
    return [(c, check) for c, check in active if c.id not in replaced]


def pod_security_violations(
    manifest: dict[str, Any],
    kubernetes_version: str | Version = "latest",
    level: str = "restricted",
) -> list[str]:
    """Every control the manifest's pods break at ``level`` on ``kubernetes_version``, as
    ``"<control id> (<title>): <why>"``; empty when the API server would admit them."""
    template = pod_template(manifest)
    if template is None:
        return []
    metadata, spec = template
    version = parse_version(kubernetes_version)
    problems = []
    for control, check in active_controls(level, version):
        detail = check(metadata, spec)
        if detail:
            problems.append(f"{control.id} ({control.title}): {detail}")
    return problems
