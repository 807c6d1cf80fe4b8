"""Every alert's runbook_url points at a README entry that says what it means, what to check
and what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.observability import alerts
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion

README = Path(__file__).resolve().parents[3] / "README.md"
RULES = alerts.alert_rules(
    PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse("4.3.4"), broker_replicas=3),
    alerts.AlertThresholds(),
)


def github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))


def runbook_entries() -> dict[str, str]:
    text = README.read_text()
    start = text.index("### Runbook")
    # The runbook ends where the next section (## or ###) starts: later #### headings belong to
    # other sections.
    body = text.index("\n", start)
    following = re.search(r"^#{2,3} ", text[body:], re.M)
    runbook = text[start:body + following.start()] if following else text[start:]
    entries: dict[str, str] = {}
    for match in re.finditer(r"^#### ([^\n]+)\n(.*?)(?=^#{2,4} |\Z)", runbook, re.M | re.S):
        entries[github_anchor(match.group(1))] = match.group(2)
    return entries


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_each_alert_has_a_runbook_entry_with_meaning_checks_and_actions(rule):
    entries = runbook_entries()
    assert rule.runbook_anchor in entries, f"README has no '#### {rule.name}' runbook entry"
    entry = entries[rule.runbook_anchor]
    for part in ("**What it means:**", "**What to check:**", "**What to do:**"):
        assert part in entry, f"{rule.name}: runbook entry lacks {part}"
    assert len(entry.split()) >= 40, f"{rule.name}: runbook entry is too thin to act on"


def test_the_rule_files_link_each_alert_to_its_entry():
    groups = alerts.rule_groups(RULES, runbook_base="https://example.com/ha-celery/README.md")
    urls = {r["alert"]: r["annotations"]["runbook_url"] for g in groups["groups"]
            for r in g["rules"]}
    assert urls["RabbitMQNodeDown"] == "https://example.com/ha-celery/README.md#rabbitmqnodedown"
    assert set(urls) == {rule.name for rule in RULES}


def test_no_runbook_entry_is_left_without_an_alert():
    assert set(runbook_entries()) == {rule.runbook_anchor for rule in RULES}
