#!/usr/bin/env bash
# Installs what the tests need, from nothing, and runs them.
#   bash tests/run.sh            # the whole suite
#   bash tests/run.sh -k spool   # extra arguments go to pytest
# Needs: Debian 12 (or similar) with python3 >= 3.9; root to apt-get what is missing.
#
# Packages it installs start no service and leave none enabled: a policy-rc.d
# refuses every start while apt runs, and each service unit they ship is then
# disabled (deb-systemd-helper, so a later upgrade keeps it disabled). The
# tests start their own Prometheus, Alertmanager and so on.
#
# Under this script every skipped test fails the run unless its reason says
# the thing it needs is "not installable here" (tests/guards.py), so a skip
# cannot hide a tool this script should have installed.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "tests/run.sh: $*"; }
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"  # smartctl, mkfs.ext4, losetup as root

# Debian's own interpreter, the one a fresh Debian 12 has (not a pyenv shim on PATH).
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || echo /usr/bin/python3)

# Every outside tool a test runs, as "command:Debian package".
tools=(
    promtool:prometheus prometheus:prometheus
    amtool:prometheus-alertmanager prometheus-alertmanager:prometheus-alertmanager
    restic:restic borg:borgbackup
    # Dumps proven readable (tests/test_dump_readable.py): zstd -t, and a real PostgreSQL
    # (initdb, pg_dump, pg_restore) making a custom-format dump. postgresql-common is named
    # too so its postgresql.service is disabled below like every other installed service.
    zstd:zstd runuser:util-linux pg_restore:postgresql-client
    pg_ctlcluster:postgresql-common pg_ctlcluster:postgresql
    systemd-analyze:systemd journalctl:systemd
    shellcheck:shellcheck openssl:openssl smartctl:smartmontools
    mkfs.ext4:e2fsprogs losetup:mount mount:mount unshare:util-linux
    useradd:passwd userdel:passwd
    # A real systemd for the units (tests/test_nspawn.py): a Debian 12 root booted by nspawn;
    # Ansible reaches the container over ssh.
    systemd-nspawn:systemd-container debootstrap:debootstrap ssh:openssh-client
    # PostgreSQL's server, the store's second engine: the tests run private clusters
    # of their own with initdb/pg_ctl (tests/postgres.py), found in its versioned bin/.
    initdb:postgresql pg_ctl:postgresql
    # The ransomware watcher's quiet scenarios (tests/test_ransomware.py): a real logrotate
    # run with compress, and lsb-release, the package its apt-get --reinstall scenario
    # reinstalls (small, files in a handful of directories).
    logrotate:logrotate lsb_release:lsb-release
)
# Debian keeps PostgreSQL's server programs off PATH, under /usr/lib/postgresql/<version>/bin.
postgres_on_path() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && PATH="$PATH:$dir"
    done
    return 0
}
postgres_on_path
step "checking the tools the tests use"
packages=()
for entry in "${tools[@]}"; do
    command -v "${entry%%:*}" >/dev/null && continue
    case " ${packages[*]} " in *" ${entry#*:} "*) ;; *) packages+=("${entry#*:}") ;; esac
done
# A bare debootstrap root has no Python at all: python3-venv brings python3 too.
"$python" -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)

if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/run.sh: missing ${packages[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Debian's postgresql would also make a "main" cluster for its service: the tests
    # want none (they start their own), so none is made.
    if [[ " ${packages[*]} " == *" postgresql "* ]]; then
        mkdir -p /etc/postgresql-common/createcluster.d
        echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/dcguard-tests.conf
    fi
    # No service may start while apt installs (invoke-rc.d asks policy-rc.d);
    # an existing policy-rc.d (a container's) is left as it is.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# tests/run.sh: no service starts while it installs test tools\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    step "apt-get update"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    step "apt-get install ${packages[*]}"
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${packages[@]}" 2>&1 \
        | { grep --line-buffered -E '^(Setting up|E:)' || true; } | sed -u 's/^/tests\/run.sh:   /'
    # Services of what was just installed: disabled, and stopped if systemd runs them.
    # (systemd itself is the init system when it is installed here: left alone.)
    # (postgresql is a metapackage: its units come with postgresql-common.)
    for package in "${packages[@]}" $([[ " ${packages[*]} " == *" postgresql "* ]] && echo postgresql-common); do
        [ "$package" = systemd ] && continue
        for unit in $(dpkg -L "$package" 2>/dev/null \
                      | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.(service|socket|timer)$' || true); do
            name=${unit##*/}
            step "disabling $name (from $package): the tests start their own"
            if command -v deb-systemd-helper >/dev/null; then
                deb-systemd-helper disable "$name" >/dev/null 2>&1 || true
            fi
            systemctl disable "$name" >/dev/null 2>&1 || true
            if [ -d /run/systemd/system ]; then systemctl stop "$name" >/dev/null 2>&1 || true; fi
        done
    done
    postgres_on_path
    for entry in "${tools[@]}"; do
        command -v "${entry%%:*}" >/dev/null \
            || { echo "tests/run.sh: ${entry%%:*} still missing after installing ${entry#*:}" >&2; exit 1; }
    done
fi

# The virtualenv, made from $python; one made from another interpreter is made again.
if [ ! -x .venv/bin/python ] || ! grep -qx "home = $(dirname "$python")" .venv/pyvenv.cfg 2>/dev/null; then
    step "making .venv with $python ($("$python" -V 2>&1))"
    rm -rf .venv
    "$python" -m venv .venv
fi
# pip before 21.3 cannot install a pyproject-only project editable (Debian 11 has
# 20.3): such a venv gets a newer pip first.
.venv/bin/python -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (21, 3))' \
    || .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=21.3'
step "installing dcguard and its dev dependencies into .venv (pip)"
.venv/bin/pip install --disable-pip-version-check --progress-bar off -e '.[dev]' 2>&1 \
    | { grep --line-buffered -E '^(Collecting|Successfully installed|ERROR)' || true; } \
    | sed -u 's/^/tests\/run.sh:   /'

step "running pytest with $(.venv/bin/python -V)"
export DCGUARD_STRICT_SKIPS=1
exec .venv/bin/python -m pytest "$@"
