"""Whole-stack plans, evaluated once per test session through the offline engine."""

from __future__ import annotations

import pytest

from stacks import plan as plan_engine

STACKS = ("dev", "prod", "local")


@pytest.fixture(scope="session")
def plans() -> dict[str, plan_engine.Plan]:
    return {stack: plan_engine.evaluate(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def prod(plans):
    return plans["prod"]


@pytest.fixture(scope="session")
def dev(plans):
    return plans["dev"]


@pytest.fixture(scope="session")
def local(plans):
    return plans["local"]
