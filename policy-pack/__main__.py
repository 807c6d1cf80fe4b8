"""Serves the platform's policy pack to the Pulumi CLI (policies: stacks/policy/pack.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from stacks.policy.pack import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=list(POLICIES))
