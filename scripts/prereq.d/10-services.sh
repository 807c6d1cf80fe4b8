#!/usr/bin/env bash
# The machine's PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672): start them if down,
# then check what the tests do with them: connect to PostgreSQL as a superuser without a
# password (or as HACELERY_DRILL_POSTGRES), and create vhosts with rabbitmqctl.
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
    if ! command -v pg_lsclusters >/dev/null 2>&1; then
        echo "error: PostgreSQL is not listening on 127.0.0.1:5432 and Debian's postgresql-common" \
             "(pg_lsclusters, pg_ctlcluster) is not installed: start your PostgreSQL there" >&2
        exit 1
    fi
    # The cluster configured for port 5432, whatever its version (there may be several).
    read -r version cluster < <(pg_lsclusters --no-header | awk '$3 == 5432 {print $1, $2; exit}') || true
    if [ -z "${version:-}" ]; then
        echo "error: no PostgreSQL cluster is configured for port 5432 (pg_lsclusters)" >&2
        exit 1
    fi
    echo "starting PostgreSQL $version/$cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
fi
if ! port_open 5672; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "error: RabbitMQ is not listening on 127.0.0.1:5672 and rabbitmq-server is not" \
             "installed (Debian: apt-get install rabbitmq-server)" >&2
        exit 1
    fi
    echo "starting RabbitMQ"
    rabbitmq-server -detached
    for _ in $(seq 60); do port_open 5672 && break; sleep 1; done
fi
port_open 5432 || { echo "error: PostgreSQL is not listening on 127.0.0.1:5432" >&2; exit 1; }
port_open 5672 || { echo "error: RabbitMQ is not listening on 127.0.0.1:5672" >&2; exit 1; }

admin_url="${HACELERY_DRILL_POSTGRES:-postgresql://postgres@127.0.0.1:5432/postgres}"
if command -v psql >/dev/null 2>&1 \
        && ! PGCONNECT_TIMEOUT=5 psql "$admin_url" -XAtqc 'SELECT 1' >/dev/null 2>&1; then
    echo "error: cannot connect to PostgreSQL as $admin_url without a password prompt: allow" \
         "'host all all 127.0.0.1/32 trust' in pg_hba.conf, or set HACELERY_DRILL_POSTGRES to a" \
         "superuser URL with its password" >&2
    exit 1
fi
if ! rabbitmqctl --quiet list_vhosts >/dev/null 2>&1; then
    echo "error: rabbitmqctl cannot talk to the local RabbitMQ as $(id -un): the tests create" \
         "private vhosts with it; run them as root (or as a user holding the rabbitmq user's" \
         "Erlang cookie in ~/.erlang.cookie)" >&2
    exit 1
fi
