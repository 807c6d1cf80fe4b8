"""The README's "what changing each setting does" table, checked against the change review."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.plan import compare, effects

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def measured():
    return effects.measure()


def test_the_readme_table_is_what_the_change_review_says(measured):
    text = README.read_text()
    assert effects.replace_section(text, effects.table(measured)) == text, (
        "README.md is out of date: run .venv/bin/python -m stacks.plan.effects --write README.md")


def test_no_setting_replaces_or_deletes_a_stateful_resource_without_the_review_stopping(
        measured):
    assert effects.unflagged_stateful_changes(measured) == []
    # ... and the table does try settings that would: the check is not vacuous.
    risky = [e for e in measured if e.effect == "data at risk"]
    assert len(risky) >= 5
    stateful = [c for e in risky for c in e.result.changes if c.type in effects.STATEFUL_TYPES
                and c.action in ("replace", "delete")]
    assert stateful and all(c.blocking for c in stateful)


def test_the_issues_four_examples_are_classified_as_stated(measured):
    by_key = {}
    for effect in measured:
        by_key.setdefault(effect.setting.key, []).append(effect)
    [grow, shrink] = by_key["rabbitmq.storageSize"]
    assert (grow.effect, shrink.effect) == ("in place", "refused")
    assert by_key["image.build.tag"][0].effect == "rolling restart"
    new_run = by_key["scheduler.runId"][1]
    assert new_run.effect == "replace"
    assert [(c.action, c.type) for c in new_run.result.changes] == [
        ("replace", "kubernetes:batch/v1:Job")]
    [secret] = by_key["appSecrets.SENTRY_DSN"]
    [change] = [c for c in secret.result.changes if c.type == "kubernetes:core/v1:Secret"]
    assert change.action == "update"


def review_of(*changes: compare.Change) -> compare.Review:
    return compare.Review(changes=list(changes))


def test_the_worst_change_decides_a_rows_effect():
    update = compare.Change(action="update", type="t", name="a", urn="u1")
    rolling = compare.Change(action="update", type="t", name="b", urn="u2", rolling_restart=True)
    replace = compare.Change(action="replace", type="t", name="c", urn="u3")
    risky = compare.Change(action="replace", type="t", name="d", urn="u4",
                           risks=[compare.Risk(compare.OUTAGE, "x")])
    assert effects.effect_of(review_of()) == "no change"
    assert effects.effect_of(review_of(update)) == "in place"
    assert effects.effect_of(review_of(update, rolling)) == "rolling restart"
    assert effects.effect_of(review_of(rolling, replace)) == "replace"
    assert effects.effect_of(review_of(replace, risky)) == "outage"


def test_the_generated_section_needs_its_markers():
    with pytest.raises(ValueError, match="no generated section"):
        effects.replace_section("# README\n", "| table |\n")
    text = f"a\n{effects.START}\nold\n{effects.END}\nb\n"
    assert effects.replace_section(text, "new\n") == f"a\n{effects.START}\nnew\n{effects.END}\nb\n"
