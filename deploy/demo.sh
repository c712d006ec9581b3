#!/usr/bin/env bash
# The quick-start demo: installs dcguard into .venv, then runs a collector (with its
# embedded SQLite store) and one agent reporting this machine, both on 127.0.0.1.
# Plaintext gRPC is used because both ends are on loopback; the collector refuses
# plaintext on any other address. Ctrl-C stops both.
#
#   bash deploy/demo.sh
#   DCGUARD_DEMO_GRPC=127.0.0.1:14740 DCGUARD_DEMO_METRICS=127.0.0.1:19740 bash deploy/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

grpc_listen=${DCGUARD_DEMO_GRPC:-127.0.0.1:4740}
metrics_listen=${DCGUARD_DEMO_METRICS:-127.0.0.1:9740}
demo=${DCGUARD_DEMO_DIR:-$PWD/.demo}

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "demo: installing python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip before 21.3 cannot install a pyproject-only project editable (Debian 11 has
# 20.3): such a venv gets a newer pip first.
.venv/bin/python -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (21, 3))' \
    || .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=21.3'
echo "demo: installing dcguard into .venv" >&2
.venv/bin/pip install --quiet --disable-pip-version-check -e .

mkdir -p "$demo"
cat > "$demo/collector.toml" <<TOML
[server]
grpc_listen = "$grpc_listen"
metrics_listen = "$metrics_listen"
data_dir = "$demo/collector-data"
insecure = true    # loopback only: the collector refuses plaintext elsewhere
TOML
cat > "$demo/agent.toml" <<TOML
[agent]
department = "demo"
interval = "5s"
state_dir = "$demo/agent-state"

[collector]
addresses = ["$grpc_listen"]
insecure = true
TOML

pids=()
cleanup() {
    trap - EXIT INT TERM
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    echo "demo: stopped; data kept in $demo" >&2
}
trap cleanup EXIT INT TERM

.venv/bin/dcguard-collector serve --config "$demo/collector.toml" 2>>"$demo/collector.log" &
pids+=($!)
for _ in $(seq 1 40); do
    grep -q "listening grpc=" "$demo/collector.log" 2>/dev/null && break
    kill -0 "${pids[0]}" 2>/dev/null || { tail -n 5 "$demo/collector.log" >&2; exit 1; }
    sleep 0.25
done
.venv/bin/dcguard-agent run --config "$demo/agent.toml" 2>>"$demo/agent.log" &
pids+=($!)

# Wait (bounded) until this machine is up on /metrics.
url="http://$metrics_listen/metrics"
for _ in $(seq 1 60); do
    if .venv/bin/python - "$url" <<'PY' 2>/dev/null
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
sys.exit(0 if any(l.startswith("dcguard_agent_up{") and l.endswith(" 1")
                  for l in text.splitlines()) else 1)
PY
    then
        cat <<MSG

dcguard demo is running: a collector and one agent reporting this machine.

  Metrics (what Prometheus scrapes):  $url
  Known agents:                       .venv/bin/dcguard-collector agents --config $demo/collector.toml
  This machine's report:              .venv/bin/dcguard-agent collect --config $demo/agent.toml
  Logs:                               $demo/collector.log, $demo/agent.log

Press Ctrl-C to stop.
MSG
        wait
        exit 0
    fi
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "demo: a process exited; see $demo/*.log" >&2
                                          tail -n 5 "$demo"/*.log >&2; exit 1; }
    done
    sleep 0.5
done
echo "demo: the agent did not show up on $url within 30 s; see $demo/*.log" >&2
exit 1
