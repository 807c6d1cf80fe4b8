#!/usr/bin/env bash
# The machine's PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672): start them if down.
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 5432; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! port_open 5672; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached
    for _ in $(seq 60); do port_open 5672 && break; sleep 1; done
fi
port_open 5432 || { echo "PostgreSQL is not listening on 127.0.0.1:5432" >&2; exit 1; }
port_open 5672 || { echo "RabbitMQ is not listening on 127.0.0.1:5672" >&2; exit 1; }
