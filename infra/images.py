"""The app's container image: either a pinned reference, or built from `app/Dockerfile` and pushed.

Owns the rule that every workload runs an image pinned by tag or digest (never a bare name, never
`latest`: a moving tag makes two pods of one Deployment run different code), and the build path:
an Artifact Registry repository created by the program plus a `pulumi_docker_build.Image` that
builds the repository root and pushes it, so one `pulumi up` ships a code change. The output is
always a single image reference; when the program built it, it is pinned by digest.

Does not decide which stacks build (the stack config does) and does not grant anything beyond
read access for the nodes' service account to the repository it creates. Needs a Docker engine
with buildx where `pulumi up` runs; nothing here runs Docker at import or under mocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from infra.validation import check

# Docker reference grammar (distribution/reference), reduced to what a registry accepts.
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]+)?)"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_HOST}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[a-f0-9]{64}"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")

# Tags that name "whatever was pushed last" rather than one build.
MOVING_TAGS = frozenset({"latest"})


def validate_image_reference(reference: str, *, field: str = "image") -> str:
    """Return ``reference`` if it is pinned (``name:tag``, ``name@sha256:...`` or both).

    Raises ArgsError naming ``field`` otherwise, with the fix.
    """
    match = _REFERENCE.match(reference) if isinstance(reference, str) else None
    check(
        match is not None,
        field,
        reference,
        "an image reference REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:<64 hex digits>",
    )
    tag, digest = match.group("tag"), match.group("digest")
    check(
        tag is not None or digest is not None,
        field,
        reference,
        "a pinned image: add a release tag or @sha256:<digest> (a bare name pulls whatever "
        "was pushed last)",
    )
    check(
        digest is not None or tag not in MOVING_TAGS,
        field,
        reference,
        f"a release tag or a digest, not the moving tag {tag!r}",
    )
    return reference


def is_pinned_by_digest(reference: str) -> bool:
    match = _REFERENCE.match(reference or "")
    return bool(match and match.group("digest"))


def artifact_registry_host(location: str) -> str:
    """Docker host of Artifact Registry in ``location`` (e.g. ``europe-west1-docker.pkg.dev``)."""
    return f"{location}-docker.pkg.dev"


def image_repository_path(project: str, location: str, repository_id: str, image_name: str) -> str:
    """Untagged path of the app image inside the repository the program creates."""
    return f"{artifact_registry_host(location)}/{project}/{repository_id}/{image_name}"


_REPOSITORY_ID = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LOCATION = re.compile(r"^[a-z]+(?:-[a-z0-9]+)+$|^(?:us|europe|asia)$")
_PLATFORM = re.compile(r"^linux/(?:amd64|arm64)$")


@dataclass(frozen=True, kw_only=True)
class ImageBuildArgs:
    """How to build the app image and where to push it (GCP stacks only)."""

    project: str
    """GCP project that holds the Artifact Registry repository."""
    location: str
    """Artifact Registry location, normally the cluster's region (pulls stay in-region)."""
    context_path: str
    """Build context: the repository root (the Dockerfile copies uv.lock and app/)."""
    dockerfile_path: str = "app/Dockerfile"
    """Dockerfile, relative to the working directory of `pulumi up` (the repository root)."""
    repository_id: str = "ha-celery"
    image_name: str = "app"
    tag: str = "main"
    """Tag pushed next to the digest; the workloads always use the digest, never this tag."""
    platforms: tuple[str, ...] = ("linux/amd64",)
    """GKE nodes are amd64: building on an arm64 laptop would otherwise push an arm64 image."""
    keep_recent_versions: int = 10
    """Artifact Registry cleanup keeps this many recent versions (rollback targets)."""
    reader_service_account: pulumi.Input[str] | None = None
    """Email of the nodes' service account, granted read on the repository so pods can pull."""

    def __post_init__(self) -> None:
        owner = "ImageBuildArgs"
        check(bool(self.project), f"{owner}.project", self.project, "the GCP project id")
        check(
            bool(_LOCATION.match(self.location or "")),
            f"{owner}.location",
            self.location,
            "a GCP region or multi-region, e.g. 'europe-west1' or 'us'",
        )
        check(
            bool(self.context_path),
            f"{owner}.context_path",
            self.context_path,
            "the repository root (the build context)",
        )
        check(
            bool(_REPOSITORY_ID.match(self.repository_id or "")),
            f"{owner}.repository_id",
            self.repository_id,
            "lowercase letters, digits and '-', starting with a letter",
        )
        check(
            bool(re.fullmatch(_PATH_COMPONENT, self.image_name or "")),
            f"{owner}.image_name",
            self.image_name,
            "lowercase letters, digits and single '.', '_' or '-'",
        )
        check(
            bool(re.fullmatch(_TAG, self.tag or "")),
            f"{owner}.tag",
            self.tag,
            "a tag: letters, digits, '_', '.', '-', at most 128 characters",
        )
        check(
            bool(self.platforms) and all(_PLATFORM.match(p) for p in self.platforms),
            f"{owner}.platforms",
            self.platforms,
            "one or more of 'linux/amd64', 'linux/arm64'",
        )
        check(
            self.keep_recent_versions >= 1,
            f"{owner}.keep_recent_versions",
            self.keep_recent_versions,
            ">= 1 (or the running image could be cleaned up)",
        )


@dataclass(frozen=True, kw_only=True)
class AppImageArgs:
    """Exactly one of ``image`` (use as is) or ``build`` (build and push)."""

    image: str | None = None
    """A pinned reference (tag or digest, not 'latest'), e.g. for the local stack."""
    build: ImageBuildArgs | None = None

    def __post_init__(self) -> None:
        check(
            (self.image is None) != (self.build is None),
            "AppImageArgs.image",
            self.image,
            "exactly one of 'image' (a pinned reference) or 'build' (build and push)",
        )
        if self.image is not None:
            validate_image_reference(self.image, field="AppImageArgs.image")


def repository_args(build: ImageBuildArgs) -> gcp.artifactregistry.RepositoryArgs:
    """Pure: the Docker repository the build pushes to."""
    return gcp.artifactregistry.RepositoryArgs(
        project=build.project,
        location=build.location,
        repository_id=build.repository_id,
        format="DOCKER",
        description="ha-celery app images, built by `pulumi up`",
        docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(
            # Mutable: every build re-points the build tag. Workloads never use it; they run the
            # digest, so a moved tag cannot change what a running Deployment pulls.
            immutable_tags=False,
        ),
        # Without a cleanup policy every `pulumi up` that changes code adds an image forever.
        cleanup_policies=[
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="keep-recent",
                action="KEEP",
                most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                    keep_count=build.keep_recent_versions,
                ),
            ),
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="delete-old",
                action="DELETE",
                condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                    tag_state="ANY",
                    older_than=f"{30 * 24 * 3600}s",
                ),
            ),
        ],
        cleanup_policy_dry_run=False,
    )


def image_build_args(
    build: ImageBuildArgs, registry_password: pulumi.Input[str] | None
) -> docker_build.ImageArgs:
    """Pure: build the repository root with app/Dockerfile and push it with a registry cache."""
    path = image_repository_path(
        build.project, build.location, build.repository_id, build.image_name
    )
    cache_ref = f"{path}:buildcache"
    registries = []
    if registry_password is not None:
        registries.append(
            docker_build.RegistryArgs(
                address=artifact_registry_host(build.location),
                # Artifact Registry accepts a short-lived OAuth token under this user name, so no
                # key file or `gcloud auth configure-docker` is needed where `pulumi up` runs.
                username="oauth2accesstoken",
                password=registry_password,
            )
        )
    return docker_build.ImageArgs(
        push=True,
        context=docker_build.BuildContextArgs(location=build.context_path),
        dockerfile=docker_build.DockerfileArgs(location=build.dockerfile_path),
        platforms=[docker_build.Platform(p) for p in build.platforms],
        tags=[f"{path}:{build.tag}"],
        registries=registries,
        # A registry cache makes a code-only change rebuild only the last layers, also on a
        # fresh machine (CI) that has no local BuildKit cache. It needs a BuildKit builder
        # other than Docker's default `docker` driver, and that is what the provider uses: with
        # no builder named, it looks for a usable non-`docker` builder and otherwise creates
        # and boots a `docker-container` one (pulumi-docker-build v0.0.22
        # provider/internal/host.go, lines 115-166; only the docker-container, kubernetes and
        # remote drivers are even compiled in, provider/internal/image.go). So no builder is
        # named here: naming one would bypass that.
        cache_from=[
            docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=cache_ref))
        ],
        cache_to=[
            docker_build.CacheToArgs(
                registry=docker_build.CacheToRegistryArgs(
                    ref=cache_ref,
                    mode=docker_build.CacheMode.MAX,
                    # Artifact Registry stores the cache as an OCI image manifest.
                    image_manifest=True,
                    oci_media_types=True,
                )
            )
        ],
    )


def digest_reference(tagged: str, digest: str) -> str:
    """``repo/image:tag`` + ``sha256:...`` -> ``repo/image:tag@sha256:...`` (validated)."""
    check(
        isinstance(digest, str) and bool(re.fullmatch(_DIGEST, digest)),
        "built image digest",
        digest,
        "sha256:<64 hex digits> from the registry push",
    )
    reference = f"{tagged}@{digest}"
    return validate_image_reference(reference, field="built image")


class AppImage(pulumi.ComponentResource):
    """The image every app pod runs: given (pinned) or built and pushed to Artifact Registry."""

    image_ref: pulumi.Output[str]
    """Image reference for the workloads; pinned by digest when built here."""

    def __init__(
        self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:images:AppImage", name, None, opts)
        if args.image is not None:
            self.image_ref = pulumi.Output.from_input(args.image)
        else:
            self.image_ref = self._build(name, args.build)
        self.register_outputs({"image_ref": self.image_ref})

    def _build(self, name: str, build: ImageBuildArgs) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        repository = gcp.artifactregistry.Repository(
            f"{name}-repository", repository_args(build), opts=child
        )
        if build.reader_service_account is not None:
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-node-reader",
                project=repository.project,
                location=repository.location,
                repository=repository.name,
                role="roles/artifactregistry.reader",
                member=pulumi.Output.concat("serviceAccount:", build.reader_service_account),
                opts=child,
            )
        token = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).access_token
        image = docker_build.Image(
            f"{name}-image",
            image_build_args(build, pulumi.Output.secret(token)),
            # The repository must exist before the push.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[repository]),
        )
        tagged = (
            image_repository_path(
                build.project, build.location, build.repository_id, build.image_name
            )
            + f":{build.tag}"
        )
        return image.digest.apply(lambda digest: digest_reference(tagged, digest))
