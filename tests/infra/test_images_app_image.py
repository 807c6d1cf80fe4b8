"""The app image: pinned references only; the build path pushes and outputs a digest."""

from __future__ import annotations

import pulumi
import pytest

from infra.images import (
    AppImage,
    AppImageArgs,
    ImageBuildArgs,
    image_build_args,
    is_pinned_by_digest,
    repository_args,
    validate_image_reference,
)
from infra.validation import ArgsError
from tests.infra.test_celery_mock_harness import (
    FAKE_DIGEST,
    Recorder,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/example/app:1.4.2",
        f"europe-west1-docker.pkg.dev/project/ha-celery/app@{DIGEST}",
        f"europe-west1-docker.pkg.dev/project/ha-celery/app:main@{DIGEST}",
        "localhost:5000/app:dev",
        "app:kind-1",
    ],
)
def test_pinned_references_are_accepted(reference):
    assert validate_image_reference(reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/example/app",
        "ghcr.io/example/app:latest",
        "app",
        "ghcr.io/Example/App:1.0",
        "ghcr.io/example/app@sha256:short",
        "",
    ],
)
def test_unpinned_or_malformed_references_are_refused(reference):
    with pytest.raises(ArgsError, match="image"):
        AppImageArgs(image=reference)


def test_latest_is_fine_only_with_a_digest():
    assert validate_image_reference(f"ghcr.io/example/app:latest@{DIGEST}")


def test_exactly_one_of_image_or_build():
    build = ImageBuildArgs(project="p", location="europe-west1", context_path=".")
    with pytest.raises(ArgsError):
        AppImageArgs()
    with pytest.raises(ArgsError):
        AppImageArgs(image="ghcr.io/example/app:1", build=build)


def test_build_uses_the_repository_root_and_app_dockerfile_and_pushes():
    build = ImageBuildArgs(project="p", location="europe-west1", context_path="/src/ha-celery")
    image = image_build_args(build, "token")
    assert image.push is True
    assert image.context.location == "/src/ha-celery"
    assert image.dockerfile.location == "app/Dockerfile"
    assert [str(p.value) for p in image.platforms] == ["linux/amd64"]
    assert image.tags == ["europe-west1-docker.pkg.dev/p/ha-celery/app:main"]
    (registry,) = image.registries
    assert registry.address == "europe-west1-docker.pkg.dev"


def test_repository_is_docker_with_a_cleanup_policy():
    build = ImageBuildArgs(project="p", location="europe-west1", context_path=".")
    repository = repository_args(build)
    assert repository.format == "DOCKER"
    assert repository.repository_id == "ha-celery"
    keep = [p for p in repository.cleanup_policies if p.action == "KEEP"]
    assert keep[0].most_recent_versions.keep_count == build.keep_recent_versions


def test_build_settings_are_validated():
    with pytest.raises(ArgsError, match="location"):
        ImageBuildArgs(project="p", location="Europe West", context_path=".")
    with pytest.raises(ArgsError, match="platforms"):
        ImageBuildArgs(project="p", location="us", context_path=".", platforms=("windows/amd64",))


@pulumi.runtime.test
def test_given_image_is_used_as_is_and_nothing_is_built(recorder: Recorder):
    reference = f"ghcr.io/example/app:1.4.2@{DIGEST}"
    image = AppImage("app", AppImageArgs(image=reference), opts=recorder.options())

    def check(resources):
        assert of_type(resources, "docker-build:index:Image") == []
        assert of_type(resources, ":Repository") == []

    return pulumi.Output.all(recorder.settled(check), image.image_ref).apply(
        lambda values: _assert_equal(values[1], reference)
    )


@pulumi.runtime.test
def test_built_image_is_pushed_to_the_programs_repository_and_pinned_by_digest(
    recorder: Recorder,
):
    build = ImageBuildArgs(
        project="p",
        location="europe-west1",
        context_path=".",
        reader_service_account="nodes@p.iam.gserviceaccount.com",
    )
    image = AppImage("app", AppImageArgs(build=build), opts=recorder.options())

    def check(resources):
        (repository,) = of_type(resources, "artifactregistry/repository:Repository")
        (built,) = of_type(resources, "docker-build:index:Image")
        (reader,) = of_type(resources, "RepositoryIamMember")
        assert repository.inputs["format"] == "DOCKER"
        assert built.inputs["push"] is True
        assert reader.inputs["role"] == "roles/artifactregistry.reader"
        assert any(d.__class__.__name__ == "Repository" for d in built.options.depends_on)

    def check_reference(reference):
        assert is_pinned_by_digest(reference)
        assert reference == f"europe-west1-docker.pkg.dev/p/ha-celery/app:main@{FAKE_DIGEST}"
        return reference

    return pulumi.Output.all(recorder.settled(check), image.image_ref.apply(check_reference))


def _assert_equal(actual, expected):
    assert actual == expected
    return actual


def test_the_registry_cache_is_left_to_the_providers_own_buildkit_builder():
    """Docker's default `docker` driver cannot export a registry cache. pulumi-docker-build never
    builds with it: with no builder named it uses or creates a `docker-container` builder. The
    build must therefore not name one (nor exec the CLI, which would use the default)."""
    build = ImageBuildArgs(project="p-123456", location="europe-west1", context_path=".")
    args = image_build_args(build, "token")
    assert args.builder is None and args.exec_ is None
    [cache_to] = args.cache_to
    assert cache_to.registry.ref.endswith("/app:buildcache")
    assert cache_to.registry.mode == "max"
    [cache_from] = args.cache_from
    assert cache_from.registry.ref == cache_to.registry.ref
