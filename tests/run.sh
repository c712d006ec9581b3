#!/usr/bin/env bash
# Installs what the tests need, from nothing, and runs them.
#   bash tests/run.sh            # the whole suite
#   bash tests/run.sh -k spool   # extra arguments go to pytest
# Needs: Debian 12 (or similar) with python3 >= 3.9; root to apt-get what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real tools the tests use: promtool/prometheus, amtool/alertmanager,
# systemd-analyze, shellcheck, openssl, restic, borg.
# And PostgreSQL's server, the store's second engine: the tests run private clusters
# of their own with initdb/pg_ctl (tests/postgres.py).
packages=()
command -v promtool >/dev/null || packages+=(prometheus)
command -v restic >/dev/null || packages+=(restic)
command -v borg >/dev/null || packages+=(borgbackup)
command -v amtool >/dev/null || packages+=(prometheus-alertmanager)
command -v systemd-analyze >/dev/null || packages+=(systemd)
command -v shellcheck >/dev/null || packages+=(shellcheck)
command -v openssl >/dev/null || packages+=(openssl)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/run.sh: missing ${packages[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Debian's postgresql would make and start a "main" cluster as a service: the tests
    # want none running (they start their own), so none is made.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/dcguard-tests.conf
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    if [[ " ${packages[*]} " == *" postgresql "* ]] && [ -d /run/systemd/system ]; then
        # Nor is the (now empty) service left enabled or running.
        systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
exec .venv/bin/python -m pytest "$@"
