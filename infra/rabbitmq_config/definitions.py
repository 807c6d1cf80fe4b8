"""The definitions document every node imports at boot: users (password hashes in RabbitMQ's
format), the vhost with quorum as its default queue type, permissions, the poison-message policy
and its dead-letter exchange and queue.

Holds password hashes, so its output belongs in a Secret; renders nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from infra.rabbitmq_config.versions import RabbitMQVersion, check_supported

ADMIN_TAGS = ("administrator",)
APPLICATION_TAGS: tuple[str, ...] = ()
MONITOR_TAGS = ("monitoring",)
POISON_POLICY_NAME = "poison-messages"


def password_hash(password: str, *, salt: bytes) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256` format: base64(salt + sha256(salt + pw))."""
    if len(salt) != 4:
        raise ValueError("salt must be 4 bytes (RabbitMQ's format)")
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def stable_salt(username: str, password: str) -> bytes:
    """A salt derived from the credentials, so the rendered Secret only changes with them.

    A fresh random salt would change the Secret on every `pulumi up` for nothing. Passwords are
    long random strings, so the usual reason for random salts (equal human passwords) is absent.
    """
    return hashlib.sha256(f"hacelery-salt:{username}:{password}".encode()).digest()[:4]


@dataclass(frozen=True, kw_only=True)
class PoisonMessagePolicy:
    """What happens to a message that keeps failing: dead-lettered after ``delivery_limit``."""

    delivery_limit: int = 20
    dead_letter_exchange: str = "dead-letter"
    dead_letter_queue: str = "dead-letter"

    def __post_init__(self) -> None:
        if not 1 <= self.delivery_limit <= 1000:
            raise ValueError(
                f"PoisonMessagePolicy.delivery_limit: {self.delivery_limit} — use 1..1000 "
                "(redeliveries before a message is dead-lettered)"
            )
        for name in ("dead_letter_exchange", "dead_letter_queue"):
            value = getattr(self, name)
            if not value or value.startswith("amq."):
                raise ValueError(
                    f"PoisonMessagePolicy.{name}: {value!r} — use a non-empty name outside 'amq.'"
                )


def definitions(
    *,
    version: RabbitMQVersion,
    vhost: str,
    admin_username: str,
    admin_password: str,
    app_username: str,
    app_password: str,
    poison: PoisonMessagePolicy,
    monitor_username: str | None = None,
    monitor_password: str | None = None,
) -> dict:
    """The definitions document imported at every boot (it holds password hashes: a Secret).

    The optional monitor user (tag `monitoring`, read-only on the vhost) is what an autoscaler
    uses to read queue depths from the management API.
    """
    check_supported(version)
    user_names = [admin_username, app_username] + ([monitor_username] if monitor_username else [])
    if len(set(user_names)) != len(user_names):
        raise ValueError("admin, application and monitor users must differ")
    accounts = [(admin_username, admin_password, ADMIN_TAGS),
                (app_username, app_password, APPLICATION_TAGS)]
    if monitor_username is not None:
        if not monitor_password:
            raise ValueError("monitor_password is required with monitor_username")
        accounts.append((monitor_username, monitor_password, MONITOR_TAGS))
    users = [
        {
            "name": name,
            "password_hash": password_hash(password, salt=stable_salt(name, password)),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": list(tags),
        }
        for name, password, tags in accounts
    ]
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "rabbit_version": str(version),
        "users": users,
        "vhosts": [
            {
                "name": vhost,
                # Clients that declare a durable queue without x-queue-type get a quorum queue;
                # exclusive/auto-delete queues fall back to classic (they cannot be quorum).
                "metadata": {
                    "description": "ha-celery broker vhost",
                    "tags": [],
                    "default_queue_type": "quorum",
                },
            }
        ],
        "permissions": [
            {"user": admin_username, "vhost": vhost, **everything},
            {"user": app_username, "vhost": vhost, **everything},
        ] + ([{"user": monitor_username, "vhost": vhost, "configure": "^$", "write": "^$",
               "read": ".*"}] if monitor_username else []),
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [
            {
                "vhost": vhost,
                "name": POISON_POLICY_NAME,
                # Every quorum queue except the dead-letter queue itself (no DLX loop).
                "pattern": f"^(?!{re.escape(poison.dead_letter_queue)}$).*",
                # Queue-type targets appeared in 3.12; 3.10 aborts the whole definitions import
                # (queues, bindings too) on an unknown value, logging nothing.
                "apply-to": "quorum_queues" if version.at_least(3, 12) else "queues",
                "priority": 0,
                "definition": {
                    # A message redelivered this often (worker crash loop) is moved aside
                    # instead of blocking the queue forever.
                    "delivery-limit": poison.delivery_limit,
                    "dead-letter-exchange": poison.dead_letter_exchange,
                    # at-least-once: the message leaves the source only once the target
                    # confirmed it; this strategy requires reject-publish overflow.
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                },
            }
        ],
        "queues": [
            {
                "name": poison.dead_letter_queue,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            }
        ],
        "exchanges": [
            {
                "name": poison.dead_letter_exchange,
                "vhost": vhost,
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "bindings": [
            {
                "source": poison.dead_letter_exchange,
                "vhost": vhost,
                "destination": poison.dead_letter_queue,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        ],
    }


def definitions_json(**kwargs) -> str:
    return json.dumps(definitions(**kwargs), indent=2, sort_keys=True) + "\n"
