"""The front door of every stack through the offline plan and the config checks: default deny
with IAP, Cloud Armor, TLS >= 1.2 and HSTS on dev and prod, an explicit `public: true`, nothing
of it on `local`, and every bad setting named by its key."""

from __future__ import annotations

import pytest

from stacks import plan as plan_engine
from stacks.config import ConfigError, parse
from tests.stacks.test_config import GCP

DNS = {"domain": "celery.example.com."}


def problems_of(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(values, "test")
    return error.value.problems


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_iap_armor_and_tls_guard_the_web_backend(plans, stack):
    plan = plans[stack]
    backend = plan.manifest("BackendConfig", "web-backend")["spec"]
    (armor,) = plan.of_type("gcp:compute/securityPolicy:SecurityPolicy")
    (tls,) = plan.of_type("gcp:compute/sSLPolicy:SSLPolicy")
    assert backend["iap"] == {"enabled": True}
    assert backend["securityPolicy"] == {"name": armor.name}
    assert backend["customResponseHeaders"]["headers"] == [
        "Strict-Transport-Security: max-age=31536000"]
    frontend = plan.manifest("FrontendConfig", "web-frontend")["spec"]
    assert frontend["sslPolicy"] == tls.name
    assert tls.inputs["minTlsVersion"] == "TLS_1_2"
    assert tls.inputs["profile"] in ("MODERN", "RESTRICTED")
    # The health checks stay on /readyz (IAP and Cloud Armor never see health checks).
    assert backend["healthCheck"]["requestPath"] == "/readyz"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_the_listed_members_may_sign_in(plans, stack):
    plan = plans[stack]
    (binding,) = plan.of_type("gcp:iap/webTypeComputeIamBinding:WebTypeComputeIamBinding")
    assert binding.inputs["role"] == "roles/iap.httpsResourceAccessor"
    assert binding.inputs["members"] and all(
        not member.startswith(("allUsers", "allAuthenticatedUsers"))
        for member in binding.inputs["members"])
    ingress = plan.manifest("Ingress", "web")
    domain = ingress["spec"]["rules"][0]["host"]
    assert binding.inputs["condition"]["expression"] == f'request.host == "{domain}"'


def test_prod_limits_come_from_the_stack_file(prod):
    (armor,) = prod.of_type("gcp:compute/securityPolicy:SecurityPolicy")
    counts = {rule["description"]: rule["rateLimitOptions"]["rateLimitThreshold"]["count"]
              for rule in armor.inputs["rules"] if rule["action"] == "throttle"}
    assert counts == {"job submissions per client": 60, "requests per client": 600}


def test_public_must_be_said_and_turns_iap_off():
    plan = plan_engine.evaluate("dev", overrides={"access": {"public": True}})
    assert plan.manifest("BackendConfig", "web-backend")["spec"]["iap"] == {"enabled": False}
    assert plan.of_type("gcp:iap/webTypeComputeIamBinding:WebTypeComputeIamBinding") == []
    assert len(plan.of_type("gcp:compute/securityPolicy:SecurityPolicy")) == 1


def test_without_an_access_section_nobody_is_let_in():
    config = parse({**GCP, "dns": DNS}, "test")
    assert config.workloads.access.public is False
    assert config.workloads.access.members == ()


def test_a_custom_oauth_client_goes_into_a_secret_by_reference():
    plan = plan_engine.evaluate("dev", overrides={
        "access.oauthClientId": "123-abc.apps.googleusercontent.com",
        "iapOAuthClientSecret": {"secure": "v1:c2VjcmV0"}})
    backend = plan.manifest("BackendConfig", "web-backend")["spec"]
    secret_name = backend["iap"]["oauthclientCredentials"]["secretName"]
    secret = plan.manifest("Secret", secret_name)
    # Both keys the ingress controller reads; no value in the spec or the plan output.
    assert secret["stringData"] == {"client_id": "[secret]", "client_secret": "[secret]"}


def test_local_has_no_front_door(local):
    assert local.kinds("Ingress") == [] and local.kinds("BackendConfig") == []
    assert local.of_type("gcp:compute/securityPolicy:SecurityPolicy") == []


@pytest.mark.parametrize(("values", "expected"), [
    ({**GCP, "dns": DNS, "access": {"members": ["alice@example.com"]}},
     "ha-celery:access.members: got 'alice@example.com'; expected an IAM principal"),
    ({**GCP, "dns": DNS, "access": {"public": True, "members": ["user:a@example.com"]}},
     "ha-celery:access.members: got ['user:a@example.com']; expected no members when public"),
    ({**GCP, "dns": DNS, "access": {"memebrs": ["user:a@example.com"]}},
     "ha-celery:access.memebrs: unknown setting; did you mean 'members'?"),
    ({**GCP, "dns": DNS, "edge": {"sslProfile": "COMPATIBLE"}},
     "ha-celery:edge.sslProfile: got 'COMPATIBLE'; expected MODERN or RESTRICTED"),
    ({**GCP, "dns": DNS, "edge": {"maxBodyBytes": 10}},
     "ha-celery:edge.maxBodyBytes: unknown setting"),
    ({**GCP, "dns": DNS, "access": {"oauthClientId": "1-a.apps.googleusercontent.com"}},
     "ha-celery:access.oauthClientId: the custom OAuth client needs its secret: `pulumi config "
     "set --secret ha-celery:iapOAuthClientSecret CLIENT_SECRET`"),
    ({**GCP, "dns": DNS, "iapOAuthClientSecret": "x"},
     "ha-celery:iapOAuthClientSecret: set, but ha-celery:access.oauthClientId is not"),
    ({**GCP, "access": {"members": ["user:a@example.com"]}},
     "ha-celery:access: only on GCP stacks with a domain"),
    ({"platform": "local", "image": {"ref": "ha-celery/app:dev"},
      "backup": {"image": {"ref": "ha-celery/pghoard:dev"}}, "keda": {"enabled": False},
      "edge": {"requestsPerMinute": 10}},
     "ha-celery:edge: only on GCP stacks with a domain: the local stack has no load balancer"),
])
def test_bad_front_door_settings_are_named_by_their_key(values, expected):
    problems = problems_of(values)
    assert any(problem.startswith(expected) for problem in problems), problems
