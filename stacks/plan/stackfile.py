"""Reading a stack's settings the way the Pulumi engine hands them to a program: `Pulumi.yaml`
defaults merged with `Pulumi.<stack>.yaml`, fully-qualified keys, JSON-encoded values, and every
encrypted value (``{secure: ...}``) replaced by a recognisable placeholder.

Does not validate the settings (``stacks/config.py`` does) and never decrypts anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from stacks.config import PROJECT, ConfigError

ROOT = Path(__file__).resolve().parents[2]
SECRET_PLACEHOLDER_PREFIX = "plansecret"
"""Every faked secret (config secrets, generated passwords and keys) starts with this, so a
test can search the written files for any of them."""


def read_stack_config(stack: str, project_dir: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """Pulumi.yaml defaults merged with Pulumi.<stack>.yaml, as the engine passes config to a
    program: fully-qualified keys, JSON-encoded non-string values. Returns (config, secret keys).
    """
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise ConfigError(
            stack, [f"no stack file {stack_file.name}; known stacks: {', '.join(known) or 'none'}"],
            missing_file=True,
        )
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[_qualify(key)] = spec["default"]
    try:
        stack_doc = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(stack, [f"{stack_file.name} is not valid YAML: {error}"]) from None
    for key, value in (stack_doc.get("config") or {}).items():
        values[_qualify(key)] = value

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in values.items():
        value, encrypted = _placeholders(key, value)
        if encrypted:
            secret_keys.append(key)
        if isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secret_keys


def _placeholders(path: str, value: Any) -> tuple[Any, bool]:
    """Replace encrypted values (``{secure: ...}``, at any depth) with placeholders.

    Only `pulumi` can decrypt them, so the plan uses recognisable placeholders that tests prove
    never leak into the output. A placeholder is derived from the key and the ciphertext (which
    sits in the stack file anyway), so `pulumi config set --secret` with a new value gives a new
    placeholder and a change review sees that the secret changed. Returns the value and whether
    anything in it was encrypted."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        seed = f"{path}\0{value['secure']}"
        digest = hashlib.sha256(seed.encode()).hexdigest()[:12]
        return f"{SECRET_PLACEHOLDER_PREFIX}{digest}", True
    if isinstance(value, dict):
        pairs = {k: _placeholders(f"{path}.{k}", v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_placeholders(f"{path}[{i}]", v) for i, v in enumerate(value)]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _qualify(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"
