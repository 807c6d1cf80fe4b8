"""The front door: IAP access, Cloud Armor rules, the TLS policy and HSTS, as pure builders and
as the component registers them."""

from __future__ import annotations

import re

import pulumi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.edge import (
    ACCESSOR_ROLE,
    EdgeArgs,
    WebAccessArgs,
    WebEdge,
    WebEdgeArgs,
    app_max_body_bytes,
    greater_than_pattern,
    hsts_header,
    security_policy_rules,
    ssl_policy_args,
)
from infra.validation import ArgsError
from tests.infra.test_celery_mock_harness import (
    Recorder,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
)


@given(limit=st.integers(min_value=0, max_value=10**12),
       value=st.integers(min_value=0, max_value=10**13))
def test_the_body_limit_pattern_matches_exactly_the_larger_numbers(limit, value):
    pattern = re.compile(greater_than_pattern(limit))
    assert bool(pattern.match(str(value))) == (value > limit)


@pytest.mark.parametrize("limit", [0, 9, 10, 89, 99, 100, 24_065_536])
def test_the_body_limit_pattern_at_its_edges(limit):
    pattern = re.compile(greater_than_pattern(limit))
    assert not pattern.match(str(limit))
    assert pattern.match(str(limit + 1))
    assert not pattern.match("abc") and not pattern.match("")


@pytest.mark.parametrize("chars", [1, 1000, 1_000_000, 5_000_000])
def test_the_edge_limit_is_the_apps_own(chars, tmp_path):
    from app.settings import AppSettings
    from app.web import create_app

    settings = AppSettings(database_url=f"sqlite:///{tmp_path}/edge.sqlite3",
                           lcs_max_input_chars=chars)
    assert create_app(settings).config["MAX_CONTENT_LENGTH"] == app_max_body_bytes(chars)


def test_cloud_armor_refuses_big_bodies_first_then_throttles_per_client():
    edge = EdgeArgs(requests_per_minute=600, submissions_per_minute=30,
                    rate_limit_interval_seconds=120, max_body_bytes=5000)
    body, jobs, everything, default = security_policy_rules(edge)
    assert body.priority < jobs.priority < everything.priority < default.priority
    assert body.action == "deny(403)"
    assert greater_than_pattern(5000) in body.match.expr.expression
    assert jobs.action == everything.action == "throttle"
    assert "request.path == '/api/jobs'" in jobs.match.expr.expression
    # Per-minute settings scaled to the counting window.
    assert jobs.rate_limit_options.rate_limit_threshold.count == 60
    assert everything.rate_limit_options.rate_limit_threshold.count == 1200
    assert everything.rate_limit_options.rate_limit_threshold.interval_sec == 120
    for rule in (jobs, everything):
        assert rule.rate_limit_options.enforce_on_key == "IP"
        assert rule.rate_limit_options.exceed_action == "deny(429)"
    assert default.priority == 2147483647 and default.action == "allow"


def test_tls_is_1_2_or_newer_with_a_strong_profile():
    policy = ssl_policy_args("p", EdgeArgs())
    assert policy.min_tls_version == "TLS_1_2" and policy.profile == "MODERN"


def test_hsts_header():
    assert hsts_header(EdgeArgs()) == "Strict-Transport-Security: max-age=31536000"
    assert hsts_header(EdgeArgs(hsts_include_subdomains=True)).endswith("; includeSubDomains")


@pytest.mark.parametrize(("changes", "field"), [
    ({"ssl_profile": "COMPATIBLE"}, "ssl_profile"),
    ({"min_tls_version": "TLS_1_0"}, "min_tls_version"),
    ({"rate_limit_interval_seconds": 45}, "rate_limit_interval_seconds"),
    ({"requests_per_minute": 10, "submissions_per_minute": 20}, "submissions_per_minute"),
    ({"requests_per_minute": 0}, "requests_per_minute"),
    ({"hsts_max_age_seconds": 10}, "hsts_max_age_seconds"),
])
def test_bad_edge_settings_name_their_field(changes, field):
    with pytest.raises(ArgsError, match=rf"EdgeArgs\.{field}"):
        EdgeArgs(**changes)


@pytest.mark.parametrize(("changes", "field"), [
    ({"members": ("alice@example.com",)}, "members"),
    ({"members": ("allUsers",)}, "members"),
    ({"members": ("user:a@example.com", "user:a@example.com")}, "members"),
    ({"public": True, "members": ("user:a@example.com",)}, "members"),
    ({"oauth_client_id": "my-client"}, "oauth_client_id"),
    ({"programmatic_clients": ("nope",)}, "programmatic_clients"),
    ({"public": True, "programmatic_clients": ("1-a.apps.googleusercontent.com",)}, "public"),
])
def test_bad_access_settings_name_their_field(changes, field):
    with pytest.raises(ArgsError, match=rf"WebAccessArgs\.{field}"):
        WebAccessArgs(**changes)


def test_a_custom_oauth_client_needs_its_secret_and_only_then():
    with pytest.raises(ArgsError, match="oauth_client_secret"):
        WebEdgeArgs(project="p", domain="a.example.com", edge=EdgeArgs(),
                    access=WebAccessArgs(oauth_client_id="1-a.apps.googleusercontent.com"))
    with pytest.raises(ArgsError, match="oauth_client_secret"):
        WebEdgeArgs(project="p", domain="a.example.com", edge=EdgeArgs(),
                    access=WebAccessArgs(), oauth_client_secret="s")


def edge_args(**access) -> WebEdgeArgs:
    return WebEdgeArgs(project="plan-project", domain="celery.example.com",
                       access=WebAccessArgs(**access), edge=EdgeArgs())


@pulumi.runtime.test
def test_members_get_iap_access_to_the_apps_host_only(recorder: Recorder):
    edge = WebEdge("web-edge", edge_args(members=("group:users@example.com",)),
                   opts=recorder.options())
    assert edge.backend.iap_enabled is True

    def check(resources):
        (binding,) = of_type(resources, "WebTypeComputeIamBinding")
        assert binding.inputs["role"] == ACCESSOR_ROLE
        assert binding.inputs["members"] == ["group:users@example.com"]
        assert binding.inputs["condition"]["expression"] == 'request.host == "celery.example.com"'
        (api,) = of_type(resources, "projects/service:Service")
        assert api.inputs["service"] == "iap.googleapis.com"
        assert of_type(resources, "iap/settings:Settings") == []

    return recorder.settled(check)


@pulumi.runtime.test
def test_a_public_app_has_no_iap_but_keeps_armor_and_tls(recorder: Recorder):
    edge = WebEdge("web-edge", edge_args(public=True), opts=recorder.options())
    assert edge.backend.iap_enabled is False

    def check(resources):
        assert of_type(resources, "WebTypeComputeIamBinding") == []
        assert len(of_type(resources, "SecurityPolicy")) == 1
        assert len(of_type(resources, "SSLPolicy")) == 1

    return recorder.settled(check)


@pulumi.runtime.test
def test_programmatic_clients_are_allowlisted_in_the_iap_settings(recorder: Recorder):
    client = "123-abc.apps.googleusercontent.com"
    WebEdge("web-edge", edge_args(programmatic_clients=(client,)), opts=recorder.options())

    def check(resources):
        (settings,) = of_type(resources, "iap/settings:Settings")
        assert settings.inputs["name"] == "projects/plan-project/iap_web/compute"
        assert settings.inputs["accessSettings"]["oauthSettings"]["programmaticClients"] == [
            client]

    return recorder.settled(check)
