"""Shared by the workload tests: a recording Pulumi mock and checks every app pod must pass.

`Recorder` runs a component under per-test mocks and hands back, once every resource it created
is registered, the inputs each one was registered with (camelCase, as the provider receives
them) and the options it was created with (parent, provider, depends_on). Tests return the
Output of their assertions from a `@pulumi.runtime.test` function, so a failing assertion fails
the test instead of vanishing inside an `apply`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pytest

from infra.celery import AppRuntimeArgs, SecretKeyRef

FAKE_DIGEST = "sha256:" + "ab" * 32


def runtime(**overrides) -> AppRuntimeArgs:
    values = {
        "namespace": "ha-celery",
        "image": "europe-west1-docker.pkg.dev/p/ha-celery/app@" + FAKE_DIGEST,
        "broker_url": SecretKeyRef(name="rabbitmq-app-user", key="broker-url"),
        "database_url": SecretKeyRef(name="postgres-app-user", key="database-url"),
        "settings": {"LCS_LARGE_THRESHOLD": "1000"},
    }
    values.update(overrides)
    return AppRuntimeArgs(**values)


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict
    provider: str | None
    options: pulumi.ResourceOptions


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, pulumi.runtime.MockResourceArgs] = {}
        self.calls: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.inputs[args.name] = args
        outputs = dict(args.inputs)
        if args.typ == "docker-build:index:Image":
            outputs["digest"] = FAKE_DIGEST
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args.token)
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": "test-access-token", "project": "p", "region": "r"}
        return {}


class Recorder:
    """Creates resources with a capturing transformation; ``settled`` waits for all of them."""

    def __init__(self, mocks: RecordingMocks) -> None:
        self.mocks = mocks
        self._captured: list[pulumi.ResourceTransformationArgs] = []

    def options(self, **extra) -> pulumi.ResourceOptions:
        def capture(args: pulumi.ResourceTransformationArgs):
            self._captured.append(args)
            return None

        return pulumi.ResourceOptions(transformations=[capture], **extra)

    def settled(self, check: Callable[[dict[str, Registered]], None]) -> pulumi.Output:
        """Output that runs ``check(resources by Pulumi name)`` after every registration."""
        captured = list(self._captured)

        def run(_):
            resources = {}
            for args in captured:
                mock = self.mocks.inputs[args.name]
                resources[args.name] = Registered(
                    type=args.type_,
                    name=args.name,
                    inputs=mock.inputs,
                    provider=mock.provider,
                    options=args.opts,
                )
            check(resources)
            return True

        return pulumi.Output.all(*[args.resource.urn for args in captured]).apply(run)


@pytest.fixture(name="recorder")
def recorder_fixture() -> Recorder:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="ha-celery", stack="test", preview=False)
    return Recorder(mocks)


def of_type(resources: dict[str, Registered], type_suffix: str) -> list[Registered]:
    return [r for r in resources.values() if r.type.endswith(type_suffix)]


# ------------------------------------------------------------------ checks on typed Args objects


def containers_of(pod_spec: k8s.core.v1.PodSpecArgs) -> Iterator[k8s.core.v1.ContainerArgs]:
    yield from pod_spec.containers or []
    yield from pod_spec.init_containers or []


def assert_restricted(pod_spec: k8s.core.v1.PodSpecArgs) -> None:
    """Pod Security Standard `restricted`, pod and every container."""
    pod = pod_spec.security_context
    assert pod.run_as_non_root is True
    assert pod.run_as_user and pod.run_as_user != 0
    assert pod.seccomp_profile.type == "RuntimeDefault"
    assert pod_spec.host_network in (None, False)
    assert pod_spec.host_pid in (None, False)
    for container in containers_of(pod_spec):
        context = container.security_context
        assert context.allow_privilege_escalation is False, container.name
        assert context.privileged in (None, False), container.name
        assert context.capabilities.drop == ["ALL"], container.name
        assert not context.capabilities.add, container.name
        assert context.run_as_non_root is True, container.name
        assert context.seccomp_profile.type == "RuntimeDefault", container.name
        assert context.read_only_root_filesystem is True, container.name


def assert_resources(pod_spec: k8s.core.v1.PodSpecArgs) -> None:
    """Every container requests CPU and memory and has a memory limit."""
    for container in containers_of(pod_spec):
        resources = container.resources
        assert resources is not None, container.name
        assert resources.requests.get("cpu"), container.name
        assert resources.requests.get("memory"), container.name
        assert resources.limits.get("memory"), container.name


def assert_secrets_by_reference(pod_spec: k8s.core.v1.PodSpecArgs) -> None:
    """Broker and database URLs come from Secrets; no literal value carries a password URL."""
    for container in containers_of(pod_spec):
        env = {e.name: e for e in container.env or []}
        for name in ("CELERY_BROKER_URL", "DATABASE_URL"):
            if name in env:
                assert env[name].value is None, (container.name, name)
                assert env[name].value_from.secret_key_ref.name, (container.name, name)
        for e in env.values():
            assert e.value is None or "@" not in e.value, (container.name, e.name)


def assert_tmp_is_empty_dir(pod_spec: k8s.core.v1.PodSpecArgs) -> None:
    volumes = {v.name: v for v in pod_spec.volumes or []}
    for container in containers_of(pod_spec):
        mounts = {m.mount_path: m.name for m in container.volume_mounts or []}
        assert "/tmp" in mounts, container.name
        assert volumes[mounts["/tmp"]].empty_dir is not None


def env_of(container: k8s.core.v1.ContainerArgs) -> dict[str, k8s.core.v1.EnvVarArgs]:
    return {e.name: e for e in container.env or []}
