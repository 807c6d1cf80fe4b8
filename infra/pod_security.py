"""Security contexts that satisfy the Kubernetes Pod Security Standard `restricted`.

One place for the settings every pod of the platform shares, so a component cannot forget one
and a test can check all of them against the same definition. Does not decide the uid: each
workload's image has its own (RabbitMQ 999, PostgreSQL 999, the app 10001).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

RUNTIME_DEFAULT_SECCOMP = k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")


def pod_security_context(
    uid: int, *, fs_group: int | None = None
) -> k8s.core.v1.PodSecurityContextArgs:
    """Pod-level: never root, files on volumes owned by ``fs_group`` (default: the uid)."""
    group = uid if fs_group is None else fs_group
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=group,
        fs_group=group,
        # OnRootMismatch: a large PVC is not re-chowned on every start (slow start-up otherwise).
        fs_group_change_policy="OnRootMismatch",
        seccomp_profile=RUNTIME_DEFAULT_SECCOMP,
    )


def container_security_context(
    uid: int, *, read_only_root_filesystem: bool = True
) -> k8s.core.v1.SecurityContextArgs:
    """Container-level: no privilege escalation, every capability dropped, seccomp on."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=read_only_root_filesystem,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=RUNTIME_DEFAULT_SECCOMP,
    )
