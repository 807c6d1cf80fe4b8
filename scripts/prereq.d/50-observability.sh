#!/usr/bin/env bash
# Debian's Prometheus (with promtool), Alertmanager (with amtool) and postgres_exporter, for the
# alert-rule unit tests (promtool check/test rules, amtool check-config) and the observability
# drill (tests/drills/test_observability.py, marker `drill`), which runs all three on its own
# ports and files. The packages' own services are not needed: while installing, a temporary
# policy-rc.d keeps them from starting (unless the machine already has one, as containers do).
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
    && [ -x /usr/bin/prometheus ] && [ -x /usr/bin/prometheus-alertmanager ] \
    && [ -x /usr/bin/prometheus-postgres-exporter ]; then
    exit 0
fi
echo "installing Debian's prometheus, prometheus-alertmanager and prometheus-postgres-exporter"
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager prometheus-postgres-exporter >/dev/null
prometheus --version 2>&1 | head -1
prometheus-alertmanager --version 2>&1 | head -1
prometheus-postgres-exporter --version 2>&1 | head -1
