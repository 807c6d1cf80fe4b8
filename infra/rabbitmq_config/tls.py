"""TLS for a RabbitMQ node: the AMQPS and management HTTPS keys of rabbitmq.conf, the Erlang
distribution option file (``inter_node_tls.config``) and the env file that switches distribution
(the node and every CLI tool) to ``inet_tls``.

What it renders (RabbitMQ docs "TLS Support" and "Securing Cluster (Inter-node) and CLI Tool
Communication with TLS", the same keys from 3.10 to 4.3):
- AMQPS on ``amqps_port`` (5671) for clients. Server authentication: ``verify_peer`` with
  ``fail_if_no_peer_cert = false`` (clients present no certificate; they log in with a password
  and verify the server against the stack's CA). Plain AMQP is bound to 127.0.0.1 only, for the
  pod's own probes and tools (or off), never reachable from the pod network.
- Management over HTTPS (KEDA's queue depth); plain HTTP on 127.0.0.1 only.
- Prometheus over HTTPS (the scraper verifies the server or at least encrypts).
- Inter-node: Erlang distribution over TLS with mutual verification (``verify_peer`` and
  ``fail_if_no_peer_cert`` on both sides): every node presents the shared node certificate, whose
  names cover every pod; a node without a certificate from the stack's CA cannot join, and
  quorum-queue replication (every message) travels encrypted.
- TLS 1.3 and 1.2 only; for 1.2 only ECDHE + AEAD suites that match an ECDSA key.

Does not decide where the files live (the component or the drill passes paths) and holds no key
material.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TLS_VERSIONS = ("tlsv1.3", "tlsv1.2")
"""1.3 first; 1.2 for clients that lack 1.3. 1.0/1.1 are broken and refused."""
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
)
"""Forward secrecy and authenticated encryption only, for the stack's ECDSA P-256 keys."""
TLS13_CIPHERS = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
)
CIPHERS = (*TLS13_CIPHERS, *TLS12_CIPHERS)

AMQPS_PORT = 5671
MANAGEMENT_TLS_PORT = 15671
PROMETHEUS_TLS_PORT = 15691
LOOPBACK = "127.0.0.1"

_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")


@dataclass(frozen=True, kw_only=True)
class BrokerTls:
    """Where a node finds its certificate, key and the CA, and which TLS listeners it opens."""

    certificate_file: str
    key_file: str
    ca_file: str
    amqps_port: int = AMQPS_PORT
    management_tls_port: int = MANAGEMENT_TLS_PORT
    prometheus_tls_port: int = PROMETHEUS_TLS_PORT
    loopback_plain_amqp: bool = True
    """True: plain AMQP stays on 127.0.0.1 (the readiness probe and local tools only; nothing
    from the pod network reaches it). False: no plain AMQP listener at all."""
    inter_node: bool = True
    """Erlang distribution over TLS (mutual). Needs ``rabbitmq_env_conf`` (or the same
    arguments in the environment) for the node and its CLI tools."""

    def __post_init__(self) -> None:
        for name in ("certificate_file", "key_file", "ca_file"):
            value = getattr(self, name)
            if not _PATH.match(value):
                raise ValueError(
                    f"BrokerTls.{name}: {value!r} — use an absolute path of letters, digits and "
                    "'_./-' (it is written into rabbitmq.conf and an Erlang term file)"
                )
        for name in ("amqps_port", "management_tls_port", "prometheus_tls_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ValueError(f"BrokerTls.{name}: {port} is not a TCP port (1-65535)")


def _options(prefix: str, tls: BrokerTls) -> list[str]:
    lines = [
        f"{prefix}.cacertfile = {tls.ca_file}",
        f"{prefix}.certfile = {tls.certificate_file}",
        f"{prefix}.keyfile = {tls.key_file}",
    ]
    lines += [f"{prefix}.versions.{i} = {v}" for i, v in enumerate(TLS_VERSIONS, start=1)]
    lines += [f"{prefix}.ciphers.{i} = {c}" for i, c in enumerate(CIPHERS, start=1)]
    # The server's order wins: a client cannot talk it down to its weakest common suite.
    lines.append(f"{prefix}.honor_cipher_order = true")
    lines.append(f"{prefix}.honor_ecc_order = true")
    return lines


def amqp_listener_lines(tls: BrokerTls, bind_address: str | None, plain_port: int) -> list[str]:
    """AMQP listeners with TLS: AMQPS for clients, plain AMQP on loopback (or off)."""
    def listen(port: int) -> str:
        return f"{bind_address}:{port}" if bind_address else str(port)

    lines = [
        # Server authentication only: clients verify the node, the node does not ask them for a
        # certificate (they log in with a password, now encrypted).
        f"listeners.ssl.default = {listen(tls.amqps_port)}",
        *_options("ssl_options", tls),
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = false",
    ]
    if tls.loopback_plain_amqp:
        # Loopback only: the pod's readiness probe and its own tools; no peer on the pod
        # network can reach it, so no password or message crosses the network in clear.
        lines.append(f"listeners.tcp.default = {LOOPBACK}:{plain_port}")
    else:
        lines.append("listeners.tcp = none")
    return lines


def http_listener_lines(tls: BrokerTls, bind_address: str | None, management_port: int,
                        prometheus_port: int) -> list[str]:
    """Management and Prometheus over HTTPS; their plain HTTP listeners on loopback only."""
    lines = [f"management.ssl.port = {tls.management_tls_port}",
             *_options("management.ssl", tls)]
    lines += [f"prometheus.ssl.port = {tls.prometheus_tls_port}",
              *_options("prometheus.ssl", tls)]
    if bind_address:
        lines += [f"management.ssl.ip = {bind_address}", f"prometheus.ssl.ip = {bind_address}"]
    lines += [
        # Plain HTTP stays for `kubectl port-forward` and local checks only (loopback).
        f"management.tcp.port = {management_port}",
        f"management.tcp.ip = {LOOPBACK}",
        f"prometheus.tcp.port = {prometheus_port}",
        f"prometheus.tcp.ip = {LOOPBACK}",
    ]
    return lines


def _erlang_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def inter_node_tls_config(tls: BrokerTls) -> str:
    """The ``-ssl_dist_optfile`` of Erlang distribution: one set of options for a node accepting
    a peer (server) and one for a node dialling a peer or a CLI tool dialling the node (client).
    Both sides verify: a peer without a certificate from the stack's CA is refused."""
    files = (f"{{cacertfile, {_erlang_string(tls.ca_file)}}}, "
             f"{{certfile, {_erlang_string(tls.certificate_file)}}}, "
             f"{{keyfile, {_erlang_string(tls.key_file)}}}")
    versions = "[" + ", ".join(f"'{v}'" for v in TLS_VERSIONS) + "]"
    common = f"{files}, {{versions, {versions}}}, {{secure_renegotiate, true}}, " \
             "{verify, verify_peer}"
    return (
        "%% Generated by infra/rabbitmq_config/tls.py; do not edit by hand.\n"
        "[\n"
        f"  {{server, [{common}, {{fail_if_no_peer_cert, true}}]}},\n"
        # The client checks the peer's host name (from its node name) against the certificate,
        # which names every pod; SNI carries it.
        f"  {{client, [{common}]}}\n"
        "].\n"
    )


def distribution_erl_args(optfile: str) -> str:
    """Erlang flags that put distribution on TLS with ``optfile`` (node and CLI tools alike).

    ``inet_tls_dist`` lives in OTP's ssl application, which is on the code path of every
    release RabbitMQ 3.10+ runs on (measured on Debian's 3.10.8 / OTP 25), so no
    ``-pa $ERL_SSL_PATH`` is needed."""
    if not _PATH.match(optfile):
        raise ValueError(f"optfile: {optfile!r} — use an absolute path")
    return f"-proto_dist inet_tls -ssl_dist_optfile {optfile}"


def rabbitmq_env_conf(tls: BrokerTls | None, optfile: str) -> str:
    """``rabbitmq-env.conf``: read by the server script and by every CLI tool (probes, preStop),
    so both speak TLS distribution. Empty of settings without inter-node TLS."""
    lines = ["# Generated by infra/rabbitmq_config/tls.py; do not edit by hand."]
    if tls is not None and tls.inter_node:
        args = distribution_erl_args(optfile)
        lines += [f'SERVER_ADDITIONAL_ERL_ARGS="{args}"', f'CTL_ERL_ARGS="{args}"']
    return "\n".join(lines) + "\n"


def tls_conf_lines(tls: BrokerTls, *, bind_address: str | None, amqp_port: int,
                   management_port: int, prometheus_port: int) -> list[str]:
    """Every rabbitmq.conf listener line with TLS on."""
    return [
        *amqp_listener_lines(tls, bind_address, amqp_port),
        *http_listener_lines(tls, bind_address, management_port, prometheus_port),
    ]
