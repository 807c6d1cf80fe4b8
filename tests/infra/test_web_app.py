"""The web app: probes, migrate initContainer, the GCE Ingress wiring, and local without Ingress."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra.validation import ArgsError
from infra.web import (
    BACKEND_CONFIG_ANNOTATION,
    FRONTEND_CONFIG_ANNOTATION,
    INGRESS_CLASS_ANNOTATION,
    MANAGED_CERTIFICATES_ANNOTATION,
    STATIC_IP_ANNOTATION,
    WebApp,
    WebAppArgs,
    WebIngressArgs,
    backend_config_name,
    backend_config_spec,
    certificate_name,
    frontend_config_name,
    frontend_config_spec,
    ingress_args,
    managed_certificate_spec,
    service_args,
    web_deployment_args,
    web_network_policy_args,
    web_selector,
)
from tests.infra.test_celery_mock_harness import (
    Recorder,
    assert_resources,
    assert_restricted,
    assert_secrets_by_reference,
    assert_tmp_is_empty_dir,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
    runtime,
)

DOMAIN = "celery.example.com"
ADDRESS_NAME = "ha-celery-prod-web-ip"


def gcp_web(**overrides) -> WebAppArgs:
    values = {
        "runtime": runtime(),
        "replicas": 3,
        "ingress": WebIngressArgs(domain=DOMAIN, global_address_name=ADDRESS_NAME),
    }
    values.update(overrides)
    return WebAppArgs(**values)


def local_web() -> WebAppArgs:
    return WebAppArgs(runtime=runtime(), replicas=1)


def pod_spec(args: WebAppArgs):
    return web_deployment_args("web", args).spec.template.spec


def test_replicas_come_from_args_and_default_to_two():
    assert web_deployment_args("web", gcp_web()).spec.replicas == 3
    assert WebAppArgs(runtime=runtime()).replicas == 2


def test_migrations_run_as_an_init_container_before_gunicorn():
    spec = pod_spec(gcp_web())
    (migrate,) = spec.init_containers
    assert migrate.command == ["python", "-m", "app.migrate"]
    (web,) = spec.containers
    assert web.command[0] == "gunicorn"
    assert web.image == migrate.image


def test_readiness_checks_readyz_and_liveness_healthz():
    (web,) = pod_spec(gcp_web()).containers
    assert web.readiness_probe.http_get.path == "/readyz"
    assert web.liveness_probe.http_get.path == "/healthz"
    assert web.ports[0].container_port == 8000


def test_web_pods_are_restricted_with_resources_and_secret_references():
    spec = pod_spec(gcp_web())
    assert_restricted(spec)
    assert_resources(spec)
    assert_secrets_by_reference(spec)
    assert_tmp_is_empty_dir(spec)


def test_ingress_is_gce_class_on_the_named_global_address():
    annotations = ingress_args("web", gcp_web()).metadata.annotations
    assert annotations[INGRESS_CLASS_ANNOTATION] == "gce"
    assert annotations[STATIC_IP_ANNOTATION] == ADDRESS_NAME


def test_ingress_uses_the_managed_certificate_for_the_domain():
    args = gcp_web()
    ingress = ingress_args("web", args)
    assert ingress.metadata.annotations[MANAGED_CERTIFICATES_ANNOTATION] == certificate_name("web")
    assert managed_certificate_spec(args.ingress) == {"domains": [DOMAIN]}
    (rule,) = ingress.spec.rules
    assert rule.host == DOMAIN
    backend = rule.http.paths[0].backend.service
    assert backend.name == service_args("web", args).metadata.name


def test_plain_http_is_redirected_to_https():
    ingress = ingress_args("web", gcp_web())
    assert ingress.metadata.annotations[FRONTEND_CONFIG_ANNOTATION] == frontend_config_name("web")
    assert frontend_config_spec()["redirectToHttps"]["enabled"] is True


def test_load_balancer_health_check_uses_readyz_through_the_backend_config():
    args = gcp_web()
    annotations = service_args("web", args).metadata.annotations
    assert json.loads(annotations[BACKEND_CONFIG_ANNOTATION]) == {
        "default": backend_config_name("web")
    }
    health = backend_config_spec(args.ingress)["healthCheck"]
    assert (health["requestPath"], health["port"]) == ("/readyz", 8000)


def test_ingress_class_is_not_set_through_ingress_class_name():
    # GKE ignores spec.ingressClassName when the annotation is present, and without the
    # annotation a set ingressClassName makes GKE skip the Ingress entirely.
    assert ingress_args("web", gcp_web()).spec.ingress_class_name is None


def test_local_service_is_cluster_ip_without_load_balancer_annotations():
    service = service_args("web", local_web())
    assert service.spec.type == "ClusterIP"
    assert service.metadata.annotations is None
    with pytest.raises(ValueError, match="ingress"):
        ingress_args("web", local_web())


def test_web_admits_ingress_on_8000_only():
    policy = web_network_policy_args("web", gcp_web()).spec
    assert "Ingress" in policy.policy_types
    (rule,) = policy.ingress
    assert [(p.protocol, p.port) for p in rule.ports] == [("TCP", 8000)]
    assert policy.pod_selector.match_labels == web_selector("web")


def test_domain_and_address_name_are_validated():
    with pytest.raises(ArgsError, match="domain"):
        WebIngressArgs(domain="https://celery.example.com/", global_address_name=ADDRESS_NAME)
    with pytest.raises(ArgsError, match="global_address_name"):
        WebIngressArgs(domain=DOMAIN, global_address_name="34.120.0.1")


@pulumi.runtime.test
def test_gcp_web_app_creates_ingress_certificate_and_configs(recorder: Recorder):
    address_name = pulumi.Output.from_input(ADDRESS_NAME)
    args = gcp_web(ingress=WebIngressArgs(domain=DOMAIN, global_address_name=address_name))
    WebApp("web", args, opts=recorder.options())

    def check(resources):
        (ingress,) = of_type(resources, ":Ingress")
        annotations = ingress.inputs["metadata"]["annotations"]
        (certificate,) = of_type(resources, ":ManagedCertificate")
        (frontend,) = of_type(resources, ":FrontendConfig")
        (backend,) = of_type(resources, ":BackendConfig")
        (service,) = of_type(resources, ":Service")
        assert annotations[STATIC_IP_ANNOTATION] == ADDRESS_NAME
        assert (
            annotations[MANAGED_CERTIFICATES_ANNOTATION] == certificate.inputs["metadata"]["name"]
        )
        assert annotations[FRONTEND_CONFIG_ANNOTATION] == frontend.inputs["metadata"]["name"]
        assert certificate.inputs["spec"]["domains"] == [DOMAIN]
        assert frontend.inputs["apiVersion"] == "networking.gke.io/v1beta1"
        assert certificate.inputs["apiVersion"] == "networking.gke.io/v1"
        linked = json.loads(service.inputs["metadata"]["annotations"][BACKEND_CONFIG_ANNOTATION])
        assert linked["default"] == backend.inputs["metadata"]["name"]
        assert len(of_type(resources, ":PodDisruptionBudget")) == 1

    return recorder.settled(check)


@pulumi.runtime.test
def test_local_web_app_has_no_ingress_only_a_cluster_ip_service(recorder: Recorder):
    web = WebApp("web", local_web(), opts=recorder.options())

    def check(resources):
        assert of_type(resources, ":Ingress") == []
        assert of_type(resources, ":ManagedCertificate") == []
        assert of_type(resources, ":FrontendConfig") == []
        (service,) = of_type(resources, ":Service")
        assert service.inputs["spec"]["type"] == "ClusterIP"

    return pulumi.Output.all(recorder.settled(check), web.url).apply(
        lambda values: _assert_equal(values[1], "http://web.ha-celery.svc:80/")
    )


def _assert_equal(actual, expected):
    assert actual == expected
    return actual


def test_the_probed_path_stays_ready_with_broker_and_database_down(tmp_path):
    # The path the readiness probe and the load balancer's health check use, asked of the real
    # app with every dependency unreachable: a shared outage must not drain every web pod.
    from app.settings import AppSettings
    from app.web import create_app
    from tests.app.conftest import free_port

    settings = AppSettings(
        broker_urls=(f"amqp://guest:guest@127.0.0.1:{free_port()}//",),
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
    )
    client = create_app(settings).test_client()
    probed = {
        pod_spec(gcp_web()).containers[0].readiness_probe.http_get.path,
        backend_config_spec(gcp_web().ingress)["healthCheck"]["requestPath"],
    }
    assert probed == {"/readyz"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/status").get_json()["status"] == "degraded"
