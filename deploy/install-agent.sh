#!/usr/bin/env bash
# Installs (or upgrades in place) the dcguard agent from an offline bundle.
#
#   sudo ./install-agent.sh --department D --collector HOST:4740 \
#        [--token T --ca-fingerprint sha256:...] [--host H]
#
# Options (defaults in brackets):
#   --department D        the server's department (required on first install)
#   --collector A[,B]     collector address(es), tried in order (required on first install)
#   --host H              name reported for this server [hostname -s]
#   --token T             one-time enrollment token (dcguard-collector token create)
#   --ca-fingerprint F    the collector CA's fingerprint printed with the token
#   --insecure            plaintext to the collector (loopback demos only)
#   --prefix DIR          virtualenv of the agent [/opt/dcguard-agent]
#   --config-dir DIR      where agent.toml lives [/etc/dcguard]
#   --state-dir DIR       spool, sequence, credentials: kept across upgrades [/var/lib/dcguard-agent]
#   --unit-dir DIR        where the systemd unit is written [/etc/systemd/system]
#   --bin-dir DIR         where the dcguard-agent command is linked, on PATH [/usr/local/bin]
#   --user NAME           system user the agent runs as, created if missing [dcguard-agent]
#   --python PATH         Python 3.9-3.12 to build the virtualenv with [python3]
#   --wheels DIR          wheelhouse [the wheels/ directory next to this script]
#   --force-config        rewrite agent.toml even if it exists (default: keep it)
#   --reenroll            enroll again with --token even if an earlier run enrolled
#   --uninstall           stop and remove the service, the command's link and the
#                         virtualenv; agent.toml and the state directory are kept
#
# Running it again upgrades the agent in place: the virtualenv is refreshed
# from the bundle, agent.toml and the state directory are kept. Nothing is
# fetched from the network: pip runs with --no-index on the bundle's wheels.
set -euo pipefail

PROG=install-agent.sh
die() { echo "$PROG: $*" >&2; exit 2; }
say() { echo "$PROG: $*"; }
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }

here=$(cd "$(dirname "$0")" && pwd)
department="" collectors="" host="" token="" fingerprint="" insecure=false
prefix=/opt/dcguard-agent config_dir=/etc/dcguard state_dir=/var/lib/dcguard-agent
unit_dir=/etc/systemd/system bin_dir=/usr/local/bin user=dcguard-agent python=python3 wheels=""
force_config=false reenroll=false uninstall=false

need() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
    case "$1" in
        --department) need "$@"; department=$2; shift 2 ;;
        --collector) need "$@"; collectors=$2; shift 2 ;;
        --host) need "$@"; host=$2; shift 2 ;;
        --token) need "$@"; token=$2; shift 2 ;;
        --ca-fingerprint) need "$@"; fingerprint=$2; shift 2 ;;
        --insecure) insecure=true; shift ;;
        --prefix) need "$@"; prefix=$2; shift 2 ;;
        --config-dir) need "$@"; config_dir=$2; shift 2 ;;
        --state-dir) need "$@"; state_dir=$2; shift 2 ;;
        --unit-dir) need "$@"; unit_dir=$2; shift 2 ;;
        --bin-dir) need "$@"; bin_dir=$2; shift 2 ;;
        --user) need "$@"; user=$2; shift 2 ;;
        --python) need "$@"; python=$2; shift 2 ;;
        --wheels) need "$@"; wheels=$2; shift 2 ;;
        --force-config) force_config=true; shift ;;
        --reenroll) reenroll=true; shift ;;
        --uninstall) uninstall=true; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

config="$config_dir/agent.toml"
[ "$(id -u)" = 0 ] || die "run as root (it creates a user and writes $prefix, $config_dir, $state_dir)"
if [ -n "$token" ] && [ -z "$fingerprint" ]; then
    die "--token needs --ca-fingerprint (both are printed by dcguard-collector token create)"
fi
if [ -z "$token" ] && [ -n "$fingerprint" ]; then die "--ca-fingerprint needs --token"; fi
case "$fingerprint" in ""|sha256:*) ;; *) die "--ca-fingerprint must look like sha256:..., got $fingerprint" ;; esac
for dir in "$prefix" "$config_dir" "$state_dir" "$unit_dir" "$bin_dir"; do
    case "$dir" in /*) ;; *) die "paths must be absolute, got $dir" ;; esac
done

# The command on PATH is a link into the virtualenv; anything else there is
# someone else's and is never replaced or removed.
link="$bin_dir/dcguard-agent"
ours() { [ -L "$link" ] && [ "$(readlink "$link")" = "$prefix/bin/dcguard-agent" ]; }

if $uninstall; then
    if [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ]; then
        systemctl disable --now dcguard-agent.service >/dev/null 2>&1 || true
    fi
    if [ -f "$unit_dir/dcguard-agent.service" ]; then
        rm -f "$unit_dir/dcguard-agent.service"
        say "removed $unit_dir/dcguard-agent.service"
        if [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ]; then
            systemctl daemon-reload
        fi
    fi
    if ours; then rm -f "$link"; say "removed $link"; fi
    if [ -d "$prefix" ]; then rm -rf "$prefix"; say "removed $prefix"; fi
    say "kept $config and $state_dir (spool, credentials); remove them yourself if unwanted"
    exit 0
fi
if [ -e "$link" ] && [ ! -L "$link" ]; then
    die "$link exists and is not a link this installer made; move it away or pass --bin-dir"
fi
if [ ! -f "$config" ] || $force_config; then
    [ -n "$department" ] || die "--department is required (no $config yet)"
    [ -n "$collectors" ] || die "--collector is required (no $config yet)"
fi

# The wheelhouse: the bundle's, unless named.
if [ -z "$wheels" ]; then
    if [ -d "$here/wheels" ]; then wheels="$here/wheels"; else
        die "no wheels/ next to this script: run it from an extracted bundle (deploy/make-bundle.sh) or pass --wheels"
    fi
fi
ls "$wheels"/dcguard-*.whl >/dev/null 2>&1 || die "no dcguard wheel in $wheels"

# A Python the bundle has wheels for.
command -v "$python" >/dev/null || die "$python not found: install python3 (3.9 to 3.12)"
"$python" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 12)))' \
    || die "$python is $("$python" -V 2>&1): the bundle has wheels for Python 3.9 to 3.12 (pass --python)"
"$python" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$python cannot make virtualenvs: install the python3-venv package"

# Pip must not read the host's pip.conf or reach any index: offline, exactly the bundle.
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS

# The virtualenv: made once, remade if the Python's version changed.
want=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have=$("$prefix/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
    [ -z "$have" ] || say "Python changed ($have -> $want): rebuilding $prefix"
    rm -rf "$prefix"
    "$python" -m venv "$prefix"
fi
before=$("$prefix/bin/dcguard-agent" --version 2>/dev/null || true)
pip=("$prefix/bin/python" -m pip --quiet)
"${pip[@]}" install --no-index --find-links "$wheels" --upgrade pip >/dev/null 2>&1 || true
"${pip[@]}" install --no-index --find-links "$wheels" --upgrade dcguard
# Same version again (a rebuilt bundle): replace dcguard's own files too.
"${pip[@]}" install --no-index --find-links "$wheels" --force-reinstall --no-deps dcguard
agent="$prefix/bin/dcguard-agent"
after=$("$agent" --version)
if [ -z "$before" ]; then say "installed $after"
elif [ "$before" != "$after" ]; then say "upgraded $before -> $after"
else say "refreshed $after (same version)"; fi

# The service user: no login, no home; systemd grants its groups (see the unit).
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir "$state_dir" \
        --shell /usr/sbin/nologin --comment "dcguard agent" "$user"
    say "created system user $user"
fi

# State: kept across upgrades, private to the agent.
mkdir -p "$state_dir"
chmod 700 "$state_dir"

# Config: written once; an operator's edits survive upgrades.
if [ ! -f "$config" ] || $force_config; then
    mkdir -p "$config_dir"
    address_list=$(echo "$collectors" | tr ',' '\n' | sed 's/.*/"&"/' | paste -sd, - | sed 's/,/, /g')
    tmp="$config.tmp.$$"
    {
        echo "# dcguard agent config, written by install-agent.sh; edit freely, upgrades keep it."
        echo "# Keys: docs/operators-guide.md. Check with: $agent check-config --config $config"
        echo "[agent]"
        [ -z "$host" ] || echo "host = \"$host\""
        echo "department = \"$department\""
        echo "state_dir = \"$state_dir\""
        echo ""
        echo "[collector]"
        echo "addresses = [$address_list]"
        echo "insecure = $insecure"
    } > "$tmp"
    chmod 640 "$tmp"
    mv "$tmp" "$config"
    say "wrote $config"
else
    say "kept $config"
fi
chgrp "$user" "$config" 2>/dev/null || true
# The file only: enrollment comes below (check-config without the flag also
# requires the credentials enrollment stores).
"$agent" check-config --no-credentials --config "$config" \
    || die "$config is not valid (see above); fix it and run again"

# A token is one-time: a host enrolled by an earlier run is not enrolled again
# (so re-running the same command, or the Ansible role, is harmless).
enrolled_marker="$state_dir/.enrolled-by-installer"
if [ -n "$token" ] && [ -f "$enrolled_marker" ] && ! $reenroll; then
    say "already enrolled (pass --reenroll with a new token to enroll again)"
elif [ -n "$token" ]; then
    "$agent" enroll --config "$config" --token "$token" --ca-fingerprint "$fingerprint" \
        || die "enrollment failed (see above); get a new token with dcguard-collector token create"
    date -u +%Y-%m-%dT%H:%M:%SZ > "$enrolled_marker"
    say "enrolled with the collector"
fi
chown -R "$user:$user" "$state_dir"

# The command on PATH (the docs and the README use the bare name).
if ! ours; then
    mkdir -p "$bin_dir"
    ln -sfn "$prefix/bin/dcguard-agent" "$link"
    say "linked $link -> $prefix/bin/dcguard-agent"
fi

# The systemd unit, pointing at the paths used here.
mkdir -p "$unit_dir"
unit_src="$here/dcguard-agent.service"
[ -f "$unit_src" ] || unit_src="$here/systemd/dcguard-agent.service"
[ -f "$unit_src" ] || die "dcguard-agent.service not found next to this script"
unit="$unit_dir/dcguard-agent.service"
sed -e "s#/opt/dcguard-agent#$prefix#g" -e "s#/etc/dcguard#$config_dir#g" \
    -e "s#/var/lib/dcguard-agent#$state_dir#g" -e "s#^User=dcguard-agent#User=$user#" \
    -e "s#^Group=dcguard-agent#Group=$user#" -e "s#^StateDirectory=dcguard-agent#StateDirectory=$(basename "$state_dir")#" \
    "$unit_src" > "$unit.tmp.$$"
if cmp -s "$unit.tmp.$$" "$unit"; then
    rm -f "$unit.tmp.$$"
else
    mv "$unit.tmp.$$" "$unit"
    say "wrote $unit"
fi

if [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable dcguard-agent.service >/dev/null
    if [ -n "$token" ] || $insecure || systemctl is-active --quiet dcguard-agent.service; then
        systemctl restart dcguard-agent.service
        say "dcguard-agent enabled and (re)started: systemctl status dcguard-agent"
    else
        say "dcguard-agent enabled; enroll it (--token/--ca-fingerprint), then: systemctl start dcguard-agent"
    fi
else
    say "systemd is not running here: start the agent with $agent run --config $config"
fi
