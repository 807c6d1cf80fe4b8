"""Drill: a real RabbitMQ node booted from the deployed TLS config refuses what it must refuse.

One node (Debian's RabbitMQ, TLS for clients and distribution, certificates from
``drills.certificates``): a plaintext AMQP client, a client that does not trust the stack's CA,
a CLI tool holding the Erlang cookie but speaking plain distribution (what a plaintext node
joining the cluster does first), and one speaking TLS distribution with a certificate from
another CA are all refused; the same clients with the stack's CA get in (so a refusal is the
TLS rule at work, not a dead node).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import urllib.request

import amqp
import pytest

from drills import certificates
from drills.rabbitmq_cluster import (
    DRILL_ADMIN,
    DRILL_APP_USER,
    DRILL_VHOST,
    RABBITMQ_BIN,
    LocalRabbitMQCluster,
)
from infra import rabbitmq_config as config

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tls_node():
    cluster = LocalRabbitMQCluster(size=1, tls=True)
    try:
        with cluster:
            yield cluster
    finally:
        assert cluster.leftover_processes() == []


def _amqp(cluster: LocalRabbitMQCluster, **endpoint) -> amqp.Connection:
    connection = amqp.Connection(**endpoint, userid=DRILL_APP_USER,
                                 password=cluster.app_password, virtual_host=DRILL_VHOST,
                                 connect_timeout=5)
    connection.connect()
    return connection


def test_a_client_trusting_the_stack_ca_connects_over_amqps(tls_node):
    connection = _amqp(tls_node, **tls_node.amqp_endpoint(tls_node.nodes[0].name))
    try:
        assert connection.sock.version() in ("TLSv1.3", "TLSv1.2")
        assert connection.sock.getpeercert()["subjectAltName"]
    finally:
        connection.close()


def test_no_plaintext_amqp_listener_is_reachable(tls_node):
    node = tls_node.nodes[0]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", node.amqp_port)) != 0, "plain AMQP port is open"
    # A plaintext AMQP client aimed at the TLS port gets no AMQP session either.
    with pytest.raises((OSError, amqp.exceptions.AMQPError)):
        _amqp(tls_node, host=f"127.0.0.1:{node.amqps_port}")


def test_a_client_that_does_not_trust_the_stack_ca_is_refused(tls_node, tmp_path):
    other_ca = certificates.issue_untrusted_ca(tmp_path / "other")
    node = tls_node.nodes[0]
    with pytest.raises(ssl.SSLCertVerificationError):
        _amqp(tls_node, host=f"127.0.0.1:{node.amqps_port}",
              ssl={"ca_certs": str(other_ca), "cert_reqs": ssl.CERT_REQUIRED,
                   "server_hostname": "127.0.0.1"})


def test_a_client_dialling_a_name_the_certificate_lacks_is_refused(tls_node):
    node = tls_node.nodes[0]
    with pytest.raises(ssl.SSLCertVerificationError):
        _amqp(tls_node, host=f"127.0.0.1:{node.amqps_port}",
              ssl={"ca_certs": str(tls_node.ca_file), "cert_reqs": ssl.CERT_REQUIRED,
                   "server_hostname": "rabbitmq.elsewhere.example"})


def test_the_management_api_answers_over_https_verified_by_the_stack_ca(tls_node):
    node = tls_node.nodes[0]
    context = ssl.create_default_context(cafile=str(tls_node.ca_file))
    request = urllib.request.Request(f"https://localhost:{node.management_tls_port}/api/overview")
    token = base64.b64encode(f"{DRILL_ADMIN}:{tls_node.admin_password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
        assert json.load(response)["rabbitmq_version"] == str(tls_node.version)


def _ctl(cluster: LocalRabbitMQCluster, erl_args: str) -> subprocess.CompletedProcess:
    name = cluster.nodes[0].name
    env = cluster.environment(name)
    # A non-empty value wins over rabbitmq-env.conf; a blank one means plain distribution.
    env["RABBITMQ_CTL_ERL_ARGS"] = erl_args or " "
    return subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", name, "-q", "status"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_peer_speaking_plain_distribution_is_refused_even_with_the_cookie(tls_node):
    node = tls_node.nodes[0]
    with_tls = _ctl(tls_node, config.distribution_erl_args(
        str(node.directory / "inter_node_tls.config")))
    assert with_tls.returncode == 0, with_tls.stderr
    plain = _ctl(tls_node, "")
    assert plain.returncode != 0, "plain Erlang distribution reached a TLS-only node"


def test_a_peer_with_a_certificate_from_another_ca_is_refused(tls_node, tmp_path):
    other = certificates.issue([tls_node.certificate_spec()], tmp_path / "other")
    issued = other["rabbitmq"]
    optfile = tmp_path / "other-dist.config"
    optfile.write_text(config.inter_node_tls_config(config.BrokerTls(
        certificate_file=str(issued.certificate), key_file=str(issued.key),
        ca_file=str(other.ca_certificate))))
    refused = _ctl(tls_node, config.distribution_erl_args(str(optfile)))
    assert refused.returncode != 0, "a node certificate from another CA joined distribution"
