"""Kubernetes resource quantities ('250m', '2Gi', '500M') as numbers.

One parser for every component that checks sizes against each other (a memory limit below its
request, a disk alarm above the volume, a watermark below the container limit). Does not format
quantities back: components keep the user's spelling in the manifests.
"""

from __future__ import annotations

import re

from infra.validation import check

QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")
_FACTOR = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}


def parse_quantity(value: str, field_name: str) -> float:
    """Quantity -> float (cores or bytes); ArgsError naming ``field_name`` when malformed."""
    match = QUANTITY.match(value) if isinstance(value, str) else None
    check(match is not None, field_name, value, "a Kubernetes quantity, e.g. '250m', '1', '512Mi'")
    assert match is not None
    return float(match.group(1)) * _FACTOR[match.group(2)]


def quantity_bytes(value: str, field_name: str = "quantity") -> int:
    """Bytes in a memory or storage quantity such as ``2Gi`` or ``500M``."""
    return int(parse_quantity(value, field_name))
