"""Credentials the application's tasks need (API keys, DSNs), as one Kubernetes Secret.

Owns the `app-secrets` Secret. The values arrive as a secret Output (from encrypted stack config)
and never appear in a spec: every app pod reads them by reference, one env var per key. Also
owns the key of `checksum`, a keyed digest of the values that app pods carry on their templates
so a new value rolls them. Does not own the platform's own credentials (broker, database): their
components generate those.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import names
from infra.celery import SecretKeyRef
from infra.validation import check

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class AppSecretsArgs:
    namespace: str
    keys: tuple[str, ...]
    """Environment variable names; each is a key of the Secret."""
    values: pulumi.Input[dict]
    """Name -> value, as a secret Output."""

    def __post_init__(self) -> None:
        for key in self.keys:
            check(bool(_ENV_NAME.match(key)), "AppSecretsArgs.keys", key,
                  "environment variable names (letters, digits, '_')")


def keyed_checksum(key: str, values: dict) -> str:
    """Pure: HMAC-SHA256 (truncated) of the values, in a stable order."""
    message = json.dumps(values, sort_keys=True).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:16]


class AppSecrets(pulumi.ComponentResource):
    """The `app-secrets` Secret and the references app pods use to read it."""

    secret_name: pulumi.Output[str]
    """The Secret's name."""
    checksum: pulumi.Output[str]
    """HMAC-SHA256 of the values under a generated key, not secret: it changes when a value
    does, and without the key it says nothing about the values (a plain hash of a short secret
    could be brute-forced). A secret Output here would make every pod spec that carries it a
    secret, hiding the whole spec from previews."""

    def __init__(self, name: str, args: AppSecretsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:appsecrets:AppSecrets", name, None, opts)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name, namespace=args.namespace,
                labels=names.labels("ha-celery", name, component="app-secrets")),
            type="Opaque",
            string_data=pulumi.Output.secret(args.values),
            opts=pulumi.ResourceOptions(parent=self),
        )
        key = random.RandomPassword(f"{name}-checksum-key", length=32, special=False,
                                    opts=pulumi.ResourceOptions(parent=self))
        self.checksum = pulumi.Output.unsecret(pulumi.Output.all(key.result, args.values).apply(
            lambda parts: keyed_checksum(parts[0], parts[1])))
        self.secret_name = secret.metadata.name
        self.references = {key: SecretKeyRef(name=self.secret_name, key=key) for key in args.keys}
        """Environment variable name -> where its value is (for AppRuntimeArgs)."""
        self.register_outputs({"secret_name": self.secret_name, "checksum": self.checksum})
