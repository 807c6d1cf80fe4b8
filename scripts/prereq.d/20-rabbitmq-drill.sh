#!/usr/bin/env bash
# Debian's rabbitmq-server (3.10 on Debian 12) and Erlang's epmd for the RabbitMQ cluster drill
# (tests/drills/test_rabbitmq_failover.py, marker `drill`). The drill runs the scripts under
# /usr/lib/rabbitmq/bin directly with its own ports, cookie and epmd, so the package's own node
# (127.0.0.1:5672) is neither needed nor touched here.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && command -v epmd >/dev/null 2>&1; then
    exit 0
fi
need_packages "the RabbitMQ cluster drill" rabbitmq-server erlang-base
ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*
