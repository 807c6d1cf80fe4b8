"""The admission rules: every Pod Security control, version by version, and the CrossGuard pack.

Each control gets mutation tests: a compliant pod changed in exactly one way is refused, and the
refusal names that control (and only it). A meta-test fails if a control has none. The pack is
also served for real (``policy-pack/__main__.py``, the way the Pulumi CLI starts it) and asked
over gRPC, so what ``pulumi preview --policy-pack`` enforces is what the plan checks.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.policy import CONTROLS, check_manifest, check_resource, resource_violations
from stacks.policy.pod_security import LATEST, OLDEST, active_controls, pod_security_violations

REPOSITORY = Path(__file__).resolve().parents[2]

COMPLIANT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "ok"},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "ok"}},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}],
                },
                "volumes": [
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "conf", "configMap": {"name": "c"}},
                ],
                "containers": [
                    {
                        "name": "main",
                        "image": "x:1",
                        "ports": [{"containerPort": 8000}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            "appArmorProfile": {"type": "RuntimeDefault"},
                            "seLinuxOptions": {"type": "container_t"},
                            "procMount": "Default",
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"memory": "64Mi"},
                        },
                    }
                ],
            },
        }
    },
}
VERSIONS = [f"1.{minor}" for minor in range(OLDEST[1], LATEST[1] + 1)]


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    return pod(manifest)["containers"][0]


def changed(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    manifest = copy.deepcopy(COMPLIANT)
    edit(manifest)
    return manifest


def refused_by(manifest: dict[str, Any], version: str = "latest") -> set[str]:
    return {problem.split(" ", 1)[0] for problem in pod_security_violations(manifest, version)}


# (control, what changed, the edit, the version to check at)
MUTATIONS: list[tuple[str, str, Callable[[dict[str, Any]], object], str]] = [
    (
        "windowsHostProcess",
        "pod hostProcess",
        lambda m: pod(m)["securityContext"].update(windowsOptions={"hostProcess": True}),
        "latest",
    ),
    (
        "windowsHostProcess",
        "container hostProcess",
        lambda m: container(m)["securityContext"].update(windowsOptions={"hostProcess": True}),
        "latest",
    ),
    ("hostNamespaces", "hostNetwork", lambda m: pod(m).update(hostNetwork=True), "latest"),
    ("hostNamespaces", "hostPID", lambda m: pod(m).update(hostPID=True), "latest"),
    ("hostNamespaces", "hostIPC", lambda m: pod(m).update(hostIPC=True), "latest"),
    (
        "privileged",
        "privileged container",
        lambda m: container(m)["securityContext"].update(privileged=True),
        "latest",
    ),
    (
        "capabilities_baseline",
        "SYS_ADMIN, beyond the runtime's default set (baseline level)",
        lambda m: container(m)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN"),
        "baseline",
    ),
    (
        "capabilities_restricted",
        "a capability beyond NET_BIND_SERVICE",
        lambda m: container(m)["securityContext"]["capabilities"]["add"].append("CHOWN"),
        "latest",
    ),
    (
        "capabilities_restricted",
        "ALL not dropped",
        lambda m: container(m)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        "latest",
    ),
    (
        "hostPathVolumes",
        "a hostPath volume (baseline level)",
        lambda m: pod(m)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "baseline",
    ),
    ("hostPorts", "a hostPort", lambda m: container(m)["ports"][0].update(hostPort=8000), "latest"),
    (
        "hostProbesAndHostLifecycle",
        "a probe aimed at another host",
        lambda m: container(m)["readinessProbe"]["httpGet"].update(host="169.254.169.254"),
        "latest",
    ),
    (
        "hostProbesAndHostLifecycle",
        "a preStop hook aimed at another host",
        lambda m: container(m).update(
            lifecycle={"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 80}}}
        ),
        "latest",
    ),
    (
        "appArmorProfile",
        "container profile Unconfined",
        lambda m: container(m)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "latest",
    ),
    (
        "appArmorProfile",
        "pod profile Unconfined",
        lambda m: pod(m)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "latest",
    ),
    (
        "appArmorProfile",
        "the beta annotation set to unconfined",
        lambda m: m["spec"]["template"]["metadata"].update(
            annotations={"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}
        ),
        "latest",
    ),
    (
        "seLinuxOptions",
        "type spc_t (the super-privileged container type)",
        lambda m: container(m)["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "latest",
    ),
    (
        "seLinuxOptions",
        "a custom SELinux user",
        lambda m: pod(m)["securityContext"].update(seLinuxOptions={"user": "system_u"}),
        "latest",
    ),
    (
        "seLinuxOptions",
        "a custom SELinux role",
        lambda m: container(m)["securityContext"].update(seLinuxOptions={"role": "sysadm_r"}),
        "latest",
    ),
    (
        "procMount",
        "procMount Unmasked (baseline level)",
        lambda m: container(m)["securityContext"].update(procMount="Unmasked"),
        "baseline",
    ),
    (
        "procMount_restricted",
        "procMount Unmasked",
        lambda m: container(m)["securityContext"].update(procMount="Unmasked"),
        "latest",
    ),
    (
        "seccompProfile_baseline",
        "seccomp Unconfined (baseline level)",
        lambda m: container(m)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "baseline",
    ),
    (
        "sysctls",
        "an unsafe sysctl",
        lambda m: pod(m)["securityContext"]["sysctls"].append(
            {"name": "kernel.msgmax", "value": "1"}
        ),
        "latest",
    ),
    (
        "restrictedVolumes",
        "an NFS volume",
        lambda m: pod(m)["volumes"].append({"name": "nfs", "nfs": {"server": "s", "path": "/"}}),
        "latest",
    ),
    (
        "restrictedVolumes",
        "a hostPath volume",
        lambda m: pod(m)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "latest",
    ),
    (
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation unset",
        lambda m: container(m)["securityContext"].pop("allowPrivilegeEscalation"),
        "latest",
    ),
    (
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation true",
        lambda m: container(m)["securityContext"].update(allowPrivilegeEscalation=True),
        "latest",
    ),
    (
        "runAsNonRoot",
        "runAsNonRoot unset",
        lambda m: pod(m)["securityContext"].pop("runAsNonRoot"),
        "latest",
    ),
    (
        "runAsNonRoot",
        "a container sets runAsNonRoot false",
        lambda m: container(m)["securityContext"].update(runAsNonRoot=False),
        "latest",
    ),
    (
        "runAsUser",
        "pod runAsUser 0",
        lambda m: pod(m)["securityContext"].update(runAsUser=0),
        "latest",
    ),
    (
        "runAsUser",
        "container runAsUser 0",
        lambda m: container(m)["securityContext"].update(runAsUser=0),
        "latest",
    ),
    (
        "seccompProfile_restricted",
        "no seccomp profile anywhere",
        lambda m: pod(m)["securityContext"].pop("seccompProfile"),
        "latest",
    ),
    (
        "seccompProfile_restricted",
        "container seccomp Unconfined",
        lambda m: container(m)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "latest",
    ),
]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_compliant_pod_passes_every_control_at_every_supported_version(version: str) -> None:
    assert pod_security_violations(COMPLIANT, version) == []
    assert check_manifest(COMPLIANT, version) == []


@pytest.mark.parametrize(
    "control, change, edit, at", MUTATIONS, ids=[f"{m[0]}: {m[1]}" for m in MUTATIONS]
)
def test_one_change_is_refused_naming_its_control_and_only_it(
    control: str, change: str, edit: Callable, at: str
) -> None:
    manifest = changed(edit)
    if at == "baseline":
        problems = pod_security_violations(manifest, "latest", level="baseline")
    else:
        problems = pod_security_violations(manifest, at)
    assert {p.split(" ", 1)[0] for p in problems} == {control}, problems


def test_every_control_has_a_mutation_test() -> None:
    covered = {mutation[0] for mutation in MUTATIONS}
    missing = [control.id for control in CONTROLS if control.id not in covered]
    assert missing == [], f"controls without a mutation test: {missing}"


def test_the_table_links_every_control_to_its_upstream_check() -> None:
    for control in CONTROLS:
        docs, source = control.links
        assert docs.endswith(f"#{control.level}") and source.endswith(".go"), control


def test_a_violation_names_the_control_and_what_to_change() -> None:
    manifest = changed(lambda m: container(m)["securityContext"].pop("allowPrivilegeEscalation"))
    assert pod_security_violations(manifest) == [
        'allowPrivilegeEscalation (Privilege Escalation): container "main" must set '
        "securityContext.allowPrivilegeEscalation=false"
    ]


# ------------------------------------------------------------------ version-specific rules


def test_probe_hosts_are_refused_from_kubernetes_1_34_on() -> None:
    manifest = changed(lambda m: container(m)["readinessProbe"]["httpGet"].update(host="evil"))
    assert refused_by(manifest, "1.33") == set()
    assert refused_by(manifest, "1.34") == {"hostProbesAndHostLifecycle"}


@pytest.mark.parametrize(
    "sysctl, allowed_from",
    [
        ("net.ipv4.ip_local_reserved_ports", "1.27"),
        ("net.ipv4.tcp_keepalive_time", "1.29"),
        ("net.ipv4.tcp_rmem", "1.32"),
        ("net.ipv4.tcp_notsent_lowat", "1.37"),
    ],
)
def test_sysctls_join_the_safe_set_at_their_version(sysctl: str, allowed_from: str) -> None:
    manifest = changed(
        lambda m: pod(m)["securityContext"]["sysctls"].append({"name": sysctl, "value": "1"})
    )
    minor = int(allowed_from.split(".")[1])
    assert refused_by(manifest, f"1.{minor - 1}") == {"sysctls"}
    assert refused_by(manifest, allowed_from) == set()


def test_container_engine_t_is_an_allowed_selinux_type_from_1_31() -> None:
    manifest = changed(
        lambda m: container(m)["securityContext"].update(
            seLinuxOptions={"type": "container_engine_t"}
        )
    )
    assert refused_by(manifest, "1.30") == {"seLinuxOptions"}
    assert refused_by(manifest, "1.31") == set()


def test_user_namespaces_relax_the_root_rules_from_1_35_but_not_procmount_in_restricted() -> None:
    manifest = changed(
        lambda m: (pod(m).update(hostUsers=False), pod(m)["securityContext"].update(runAsUser=0))
    )
    assert refused_by(manifest, "1.34") == {"runAsUser"}
    assert refused_by(manifest, "1.35") == set()
    unmasked = changed(
        lambda m: (
            pod(m).update(hostUsers=False),
            container(m)["securityContext"].update(procMount="Unmasked"),
        )
    )
    assert pod_security_violations(unmasked, "1.35", level="baseline") == []
    assert refused_by(unmasked, "1.35") == {"procMount_restricted"}


def test_windows_pods_are_exempt_from_the_linux_only_restricted_controls() -> None:
    manifest = changed(
        lambda m: (
            pod(m).update(os={"name": "windows"}),
            pod(m)["securityContext"].pop("seccompProfile"),
            container(m)["securityContext"].pop("allowPrivilegeEscalation"),
            container(m)["securityContext"].pop("capabilities"),
        )
    )
    assert refused_by(manifest, "1.25") == set()
    assert refused_by(manifest, "1.24") == {
        "seccompProfile_restricted",
        "allowPrivilegeEscalation",
        "capabilities_restricted",
    }


def test_restricted_replaces_the_baseline_forms_of_its_controls() -> None:
    ids = {control.id for control, _ in active_controls("restricted", LATEST)}
    assert "capabilities_baseline" not in ids and "capabilities_restricted" in ids
    assert "hostPathVolumes" not in ids and "procMount" not in ids
    baseline = {control.id for control, _ in active_controls("baseline", LATEST)}
    assert "runAsNonRoot" not in baseline and "hostPathVolumes" in baseline


def test_container_level_settings_can_satisfy_the_pod_rules() -> None:
    manifest = changed(
        lambda m: (
            pod(m)["securityContext"].pop("runAsNonRoot"),
            pod(m)["securityContext"].pop("seccompProfile"),
            container(m)["securityContext"].update(
                runAsNonRoot=True,
                seccompProfile={"type": "Localhost", "localhostProfile": "p.json"},
            ),
        )
    )
    assert pod_security_violations(manifest) == []


def test_init_and_ephemeral_containers_are_checked_too() -> None:
    manifest = copy.deepcopy(COMPLIANT)
    pod(manifest)["initContainers"] = [{"name": "init", "image": "x:1"}]
    pod(manifest)["ephemeralContainers"] = [
        {"name": "debug", "image": "x:1", "securityContext": {"privileged": True}}
    ]
    problems = pod_security_violations(manifest)
    assert any(p.startswith("allowPrivilegeEscalation") and '"init"' in p for p in problems)
    assert any(p.startswith("privileged") and '"debug"' in p for p in problems)
    assert any("initContainers[init]" in p for p in resource_violations(manifest))
    assert not any("debug" in p for p in resource_violations(manifest))


def test_cronjob_and_bare_pod_templates_are_found() -> None:
    cronjob = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
            }
        },
    }
    assert pod_security_violations(cronjob)
    assert resource_violations(cronjob) == [
        "containers[c]: set resources requests.cpu, requests.memory, limits.memory"
    ]
    bare = {"kind": "Pod", "metadata": {"name": "p"}, "spec": pod(COMPLIANT)}
    assert pod_security_violations(bare) == []


def test_objects_without_pods_are_not_checked() -> None:
    assert pod_security_violations({"kind": "Service", "spec": {}}) == []


def test_a_missing_memory_limit_is_reported() -> None:
    manifest = changed(lambda m: container(m)["resources"].update(limits={}))
    assert resource_violations(manifest) == ["containers[main]: set resources limits.memory"]


def test_an_unknown_kubernetes_version_is_refused_with_the_format() -> None:
    with pytest.raises(ValueError, match=r"expected '1\.NN' or 'latest'"):
        pod_security_violations(COMPLIANT, "v1.33")


# --------------------------------------------------------------------------- the pack


def test_the_pack_names_the_policy_and_skips_what_holds_no_pods() -> None:
    bad = changed(lambda m: pod(m).update(hostPID=True))
    assert check_resource("kubernetes:apps/v1:Deployment", bad) == [
        "pod-security: hostNamespaces (Host Namespaces): pod must not set hostPID=true"
    ]
    assert check_resource("kubernetes:helm.sh/v3:Release", {"values": {}}) == []
    assert check_resource("gcp:storage/bucket:Bucket", {"name": "b"}) == []


def test_a_rule_only_newer_clusters_enforce_says_so() -> None:
    manifest = changed(lambda m: container(m)["readinessProbe"]["httpGet"].update(host="evil"))
    [problem] = check_manifest(manifest, "1.33")
    assert problem.startswith("pod-security: hostProbesAndHostLifecycle")
    assert problem.endswith("(on Kubernetes 1.37 only)")


ANALYZE = r"""
import json, sys
import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
port, manifest = sys.argv[1], json.loads(sys.argv[2])
stub = analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
properties = struct_pb2.Struct()
json_format.ParseDict(manifest, properties)
request = analyzer_pb2.AnalyzeRequest(
    type="kubernetes:apps/v1:Deployment", properties=properties,
    urn="urn:pulumi:prod::ha-celery::kubernetes:apps/v1:Deployment::web", name="web")
response = stub.Analyze(request, timeout=10)
print(json.dumps({"policies": sorted(p.name for p in info.policies),
                  "violations": [[d.policyName, d.message, d.enforcementLevel]
                                 for d in response.diagnostics]}))
"""


def test_the_pack_served_to_the_pulumi_cli_refuses_what_the_plan_refuses() -> None:
    server = subprocess.Popen(
        [sys.executable, str(REPOSITORY / "policy-pack" / "__main__.py")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPOSITORY / "policy-pack",
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), f"the pack did not print its port: {port!r}"
        bad = changed(lambda m: container(m)["securityContext"].update(privileged=True))
        answer = json.loads(
            subprocess.run(
                [sys.executable, "-c", ANALYZE, port, json.dumps(bad)],
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
        )
    finally:
        server.kill()
        server.wait(timeout=10)
    assert answer["policies"] == ["container-resources", "pod-security"]
    [(policy, message, level)] = answer["violations"]
    # The CLI shows the policy's description, then the violation the plan reports too.
    [planned] = check_manifest(bad)
    assert policy == "pod-security" and message.endswith(planned.removeprefix("pod-security: "))
    assert "privileged (Privileged Containers)" in message
    assert level == 1  # MANDATORY: the update stops
