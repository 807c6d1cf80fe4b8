"""RabbitMQ releases and the version gates of the generator: which config keys, discovery mode
and CLI expressions a given release (3.10..4.x) knows. The facts behind each gate are listed in
the package docstring.

Pure; no file rendering here (``conf``, ``scripts`` and ``tls`` ask these gates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class RabbitMQVersion:
    """A RabbitMQ release, comparable, e.g. ``RabbitMQVersion.parse("4.3.4")``."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> RabbitMQVersion:
        match = _VERSION_PATTERN.match(text.strip())
        if not match:
            raise ValueError(
                f"RabbitMQ version {text!r} is not of the form MAJOR.MINOR[.PATCH] (e.g. '4.3.4')"
            )
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0))

    @classmethod
    def from_image(cls, image: str) -> RabbitMQVersion:
        """The version in an official image reference: ``rabbitmq:4.3.4-management[@sha256:..]``."""
        reference = image.split("@", 1)[0]
        name, _, tag = reference.rpartition(":")
        if not name or "/" in tag or not _VERSION_PATTERN.match(tag):
            raise ValueError(
                f"image {image!r} has no version tag (expected e.g. 'rabbitmq:4.3.4-management'); "
                "pin a tag or pass rabbitmq_version explicitly"
            )
        return cls.parse(tag)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


OLDEST_SUPPORTED = RabbitMQVersion(3, 10)
"""Debian 12's rabbitmq-server (local drills); older ones lack at-least-once dead lettering."""
NEWEST_SUPPORTED_MAJOR = 4


def check_supported(version: RabbitMQVersion) -> None:
    if version < OLDEST_SUPPORTED or version.major > NEWEST_SUPPORTED_MAJOR:
        raise ValueError(
            f"RabbitMQ {version} is not supported: use {OLDEST_SUPPORTED.major}."
            f"{OLDEST_SUPPORTED.minor} or later within {NEWEST_SUPPORTED_MAJOR}.x"
        )


def has_node_wide_default_queue_type(version: RabbitMQVersion) -> bool:
    return version.at_least(4, 0)


def has_anonymous_login(version: RabbitMQVersion) -> bool:
    return version.at_least(4, 0)


def uses_seed_node_discovery(version: RabbitMQVersion) -> bool:
    """4.1+: Kubernetes discovery joins the lowest ordinal and needs no Kubernetes API access."""
    return version.at_least(4, 1)


def has_partition_handling(version: RabbitMQVersion) -> bool:
    return not version.at_least(4, 3)


def has_membership_reconciliation(version: RabbitMQVersion) -> bool:
    """3.13+: quorum queues grow back to their target size by themselves."""
    return version.at_least(3, 13)
