"""The offline Pod Security `restricted` and resource checks, on hand-made manifests."""

from __future__ import annotations

import copy

import pytest

from stacks.policy import pod_security_violations, resource_violations

COMPLIANT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "ok"},
    "spec": {
        "template": {
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumes": [
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "conf", "configMap": {"name": "c"}},
                ],
                "containers": [
                    {
                        "name": "main",
                        "image": "x:1",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"memory": "64Mi"},
                        },
                    }
                ],
            }
        }
    },
}


def mutate(path: list, value) -> dict:
    manifest = copy.deepcopy(COMPLIANT)
    node = manifest
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return manifest


POD = ["spec", "template", "spec"]
CONTAINER = [*POD, "containers", 0]


def test_compliant_pod_passes():
    assert pod_security_violations(COMPLIANT) == []
    assert resource_violations(COMPLIANT) == []


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            [*CONTAINER, "securityContext", "allowPrivilegeEscalation"],
            True,
            "allowPrivilegeEscalation",
        ),
        (
            [*CONTAINER, "securityContext", "capabilities"],
            {"drop": ["NET_RAW"]},
            "drop must include ALL",
        ),
        (
            [*CONTAINER, "securityContext", "capabilities"],
            {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
            "capabilities.add",
        ),
        ([*CONTAINER, "securityContext", "privileged"], True, "privileged"),
        ([*POD, "securityContext", "runAsNonRoot"], KeyError, "runAsNonRoot"),
        ([*POD, "securityContext", "runAsUser"], 0, "runAsUser must not be 0"),
        ([*POD, "securityContext", "seccompProfile"], {"type": "Unconfined"}, "seccompProfile"),
        ([*POD, "hostNetwork"], True, "hostNetwork"),
        ([*POD, "volumes"], [{"name": "host", "hostPath": {"path": "/"}}], "hostPath"),
    ],
)
def test_each_restricted_rule_is_enforced(path, value, expected):
    problems = pod_security_violations(mutate(path, value))
    assert any(expected in problem for problem in problems), problems


def test_container_level_settings_can_satisfy_the_pod_rules():
    manifest = mutate([*POD, "securityContext"], {})
    manifest["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
        runAsNonRoot=True, seccompProfile={"type": "RuntimeDefault"}
    )
    assert pod_security_violations(manifest) == []


def test_init_containers_are_checked_too():
    manifest = copy.deepcopy(COMPLIANT)
    manifest["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "image": "x:1"}]
    problems = pod_security_violations(manifest)
    assert any(p.startswith("initContainers[init]") for p in problems)
    assert any("initContainers[init]" in p for p in resource_violations(manifest))


def test_cronjob_pods_are_found():
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


def test_objects_without_pods_are_not_checked():
    assert pod_security_violations({"kind": "Service", "spec": {}}) == []


def test_missing_memory_limit_is_reported():
    manifest = mutate([*CONTAINER, "resources", "limits"], {})
    assert resource_violations(manifest) == ["containers[main]: set resources limits.memory"]
