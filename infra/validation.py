"""The one way Args dataclasses report a bad value.

Every message names the field, the value it got and what is allowed, so a user who mistyped a
stack setting knows what to change without reading the code. ``stacks/config.py`` turns the field
name back into the stack config key.
"""

from __future__ import annotations

from typing import Any


class ArgsError(ValueError):
    """A component input that cannot be used; ``field`` is ``"Class.attribute"``."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {value!r}; expected {allowed}")


def check(condition: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ArgsError unless ``condition`` holds."""
    if not condition:
        raise ArgsError(field, value, allowed)
