"""Settings: environment parsing, validation messages, and the no-lost-work Celery config."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys

import pytest

from app.settings import (
    DEFAULT_QUEUE,
    LARGE_QUEUE,
    SMALL_QUEUE,
    AppSettings,
    SettingsError,
    celery_settings,
    celery_settings_for,
)
from tests.app.conftest import REPOSITORY


def test_defaults_are_a_local_broker_and_sqlite() -> None:
    config = celery_settings({})
    assert config["broker_url"] == "amqp://guest:guest@127.0.0.1:5672//"
    assert config["result_backend"].startswith("db+sqlite:///")


def test_failover_list_is_kept_in_order_for_kombu() -> None:
    environ = {
        "CELERY_BROKER_URL": "amqp://u:p@rabbitmq-0:5672/v; amqp://u:p@rabbitmq-1:5672/v;"
        "amqp://u:p@rabbitmq-2:5672/v"
    }
    settings = AppSettings.from_environ(environ)
    assert settings.broker_urls == (
        "amqp://u:p@rabbitmq-0:5672/v",
        "amqp://u:p@rabbitmq-1:5672/v",
        "amqp://u:p@rabbitmq-2:5672/v",
    )
    assert celery_settings(environ)["broker_url"] == ";".join(settings.broker_urls)


def test_failover_list_reaches_kombu_as_three_alternates() -> None:
    from app.celery_app import make_celery

    environ = {"CELERY_BROKER_URL": "amqp://h0//;amqp://h1//;amqp://h2//"}
    celery = make_celery(AppSettings.from_environ(environ))
    connection = celery.connection_for_write()
    assert [alternate.split("//")[1].split(":")[0] for alternate in connection.alt] == [
        "h0",
        "h1",
        "h2",
    ]


def test_postgresql_urls_use_psycopg3() -> None:
    settings = AppSettings.from_environ({"DATABASE_URL": "postgresql://u:p@db:5432/app"})
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/app"
    assert celery_settings({"DATABASE_URL": "postgres://u:p@db/app"})["result_backend"] == (
        "db+postgresql+psycopg://u:p@db/app"
    )


def test_no_lost_work_settings() -> None:
    config = celery_settings({})
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"]["confirm_publish"] is True
    assert config["task_default_queue_type"] == "quorum"
    assert config["task_default_exchange_type"] == "topic"
    assert config["broker_connection_retry_on_startup"] is True
    assert config["broker_heartbeat"] > 0
    assert config["accept_content"] == ["json"]


def test_every_queue_is_a_quorum_queue_on_a_topic_exchange() -> None:
    queues = {queue.name: queue for queue in celery_settings({})["task_queues"]}
    assert set(queues) == {DEFAULT_QUEUE, SMALL_QUEUE, LARGE_QUEUE}
    for queue in queues.values():
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert queue.exchange.type == "topic"
        assert queue.durable


def test_every_celery_setting_is_a_known_celery_setting() -> None:
    from celery.app.defaults import DEFAULTS

    assert set(celery_settings({})) - set(DEFAULTS) == set()


def test_broker_bounds_come_from_the_environment_and_reach_celery() -> None:
    environ = {
        "CELERY_BROKER_HEARTBEAT": "6",
        "CELERY_BROKER_CONNECT_TIMEOUT": "1.5",
        "CELERY_BROKER_CONFIRM_TIMEOUT": "4",
        "CELERY_BROKER_SOCKET_TIMEOUT": "3",
        "CELERY_PUBLISH_TIMEOUT": "7",
    }
    bounds = AppSettings.from_environ(environ).broker_bounds
    assert (bounds.heartbeat, bounds.connect_timeout, bounds.confirm_timeout) == (6, 1.5, 4)
    assert (bounds.socket_timeout, bounds.publish_budget) == (3, 7)
    config = celery_settings(environ)
    assert config["broker_heartbeat"] == 6
    assert config["broker_connection_timeout"] == 1.5
    assert config["broker_transport_options"]["read_timeout"] == 3
    # Unset: the platform's defaults, a silent node is noticed within ~10 s.
    assert celery_settings({})["broker_heartbeat"] == 5.0


def test_soft_shutdown_timeout_comes_from_the_environment() -> None:
    config = celery_settings({"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "27.5"})
    assert config["worker_soft_shutdown_timeout"] == 27.5


def test_lcs_routing_uses_the_total_length_against_the_threshold() -> None:
    settings = AppSettings.from_environ({"LCS_LARGE_THRESHOLD": "10"})
    assert settings.queue_for_lcs(5, 5) == SMALL_QUEUE
    assert settings.queue_for_lcs(6, 5) == LARGE_QUEUE
    assert AppSettings().queue_for_lcs(500, 500) == SMALL_QUEUE
    assert AppSettings().queue_for_lcs(501, 500) == LARGE_QUEUE


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CELERY_BROKER_URL", "redis://localhost:6379/0", "is not an AMQP URL"),
        ("CELERY_BROKER_URL", "amqp://h1//;http://h2", "http://h2"),
        ("CELERY_BROKER_URL", " ; ", "empty"),
        ("DATABASE_URL", "mysql://u@h/db", "is not supported"),
        ("LCS_LARGE_THRESHOLD", "many", "not a whole number"),
        ("LCS_LARGE_THRESHOLD", "0", "whole number >= 1"),
        ("LCS_MAX_INPUT_CHARS", "-5", "between 1 and"),
        ("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "soon", "not a number of seconds"),
        ("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "-1", "between 0 and 3600"),
        ("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "nan", "between 0 and 3600"),
        ("CELERY_HEARTBEAT_FILE", "relative/file", "absolute path"),
        ("CELERY_RESULT_EXPIRES", "5", ">= 60"),
        ("CELERY_BROKER_HEARTBEAT", "often", "not a number of seconds"),
        ("CELERY_BROKER_HEARTBEAT", "1", "give 2..600 s"),
        ("CELERY_BROKER_CONNECT_TIMEOUT", "inf", "not a number of seconds"),
        ("CELERY_BROKER_CONFIRM_TIMEOUT", "0", "give 0.1..300 s"),
        ("CELERY_BROKER_SOCKET_TIMEOUT", "-3", "give 0.5..300 s"),
        ("CELERY_PUBLISH_TIMEOUT", "9999", "give 0.5..600 s"),
    ],
)
def test_invalid_settings_name_the_variable_and_the_fix(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        celery_settings({variable: value})
    assert variable in str(error.value)
    assert message in str(error.value)


def test_broker_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as error:
        celery_settings({"CELERY_BROKER_URL": "redis://user:s3cret@host:6379"})
    assert "s3cret" not in str(error.value)


def test_worker_app_exits_at_start_with_a_clear_message_on_bad_config() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import app.celery_app"],
        cwd=REPOSITORY,
        env={"PATH": "/usr/bin:/bin", "LCS_LARGE_THRESHOLD": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid configuration: LCS_LARGE_THRESHOLD: 'lots' is not a whole number" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_amqps_urls_verify_the_broker_against_the_given_ca() -> None:
    settings = AppSettings.from_environ({
        "CELERY_BROKER_URL": "amqps://u:p@rabbitmq-0:5671/v;amqps://u:p@rabbitmq-1:5671/v",
        "CELERY_BROKER_CA_FILE": "/etc/ha-celery/ca/ca.crt"})
    options = celery_settings_for(settings)["broker_use_ssl"]
    assert options == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": "/etc/ha-celery/ca/ca.crt",
                       "server_hostname": None}
    assert celery_settings({"CELERY_BROKER_URL": "amqp://u:p@h:5672/v"})["broker_use_ssl"] is False


@pytest.mark.parametrize(("environ", "message"), [
    ({"CELERY_BROKER_URL": "amqps://h0//;amqp://h1//"}, "mixes amqps:// with plain URLs"),
    ({"CELERY_BROKER_URL": "amqps://h0//", "CELERY_BROKER_CA_FILE": "ca.crt"},
     "CELERY_BROKER_CA_FILE: 'ca.crt' must be an absolute path"),
])
def test_bad_broker_tls_settings_name_the_variable(environ, message) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        AppSettings.from_environ(environ)
