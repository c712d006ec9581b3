"""What the agent's gRPC channel costs between reports: kept open, or closed after each report.

An open channel keeps grpc's EventEngine threads (event_engine workers,
grpc_global_timer, lifeguard) alive, and they wake on their own timers
whether or not a call goes out. Closing the channel ends them, but the next
report pays a new connection and an mTLS handshake, on the agent and on the
collector. This bench measures both, in real time, with the agent's own
Sender over mTLS to a real collector on 127.0.0.1: for each mode a fresh
process sends one report every --interval for --seconds, while this
process polls its threads every 0.25 s (bench/agent_footprint.py's Tree).
The first 5 s (start-up, first report) are left out of the window.

Modes: `kept` (one channel for the whole run, as before issue 15),
`kept:ENV=VALUE` (the same with a grpc environment variable set before grpc
is imported, e.g. GRPC_POLL_STRATEGY=poll, GRPC_ENABLE_FORK_SUPPORT=0) and
`reconnect` (closed after each report, as the agent does now).

    .venv/bin/python bench/agent_channel_cost.py [--seconds 90] [--interval 15s] \\
        [--mode kept --mode reconnect ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_footprint import Tree
from bench.procstat import tree_cpu_seconds
from dcguard.common.durations import parse_duration
from tests.support import Agent
from tests.trust_support import TlsCollector, enroll

POLL_S = 0.25
WARM_UP_S = 5.0
CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from dcguard.agent.delivery.endpoint import CollectorConfig
from dcguard.agent.delivery.sender import Sender
from dcguard.agent.trust.credentials import load_credentials
from dcguard.v1 import collector_pb2 as pb

state, address, interval, seconds, reconnect = sys.argv[1:6]
sender = Sender(
    CollectorConfig((address,), False, 10.0),
    pb.AgentInfo(host="testhost", department="test-dept", agent_version="bench",
                 interval_seconds=15, instance_id="channel-cost"),
    load_credentials(Path(state), Path("bench")),
)
report = pb.Report()
end = time.monotonic() + float(seconds)
sequence = 1000
while time.monotonic() < end:
    sequence += 1
    report.sequence = sequence
    report.collected_at.FromSeconds(int(time.time()))
    sender.submit_serialized([report.SerializeToString()])
    if reconnect == "1":
        sender.close()
    time.sleep(max(0.0, min(float(interval), end - time.monotonic())))
print(sequence - 1000)
"""


def measure(
    mode: str, collector: TlsCollector, state: Path, interval: float, seconds: float
) -> dict[str, object]:
    env = dict(os.environ)
    if mode.startswith("kept:"):
        key, _, value = mode[5:].partition("=")
        env[key] = value
    reconnect = "1" if mode == "reconnect" else "0"
    collector_cpu0 = tree_cpu_seconds(collector.proc.pid)  # type: ignore[union-attr]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD.format(root=str(ROOT)),
            str(state),
            collector.grpc_address,
            str(interval),
            str(seconds),
            reconnect,
        ],
        env=env,
        stdout=subprocess.PIPE,
    )
    tree = Tree(mode, proc.pid)
    t0 = time.monotonic()
    start: tuple[float, float] | None = None  # (time, CPU) once start-up and report 1 are done
    cpu, t_end = 0.0, t0
    try:
        while proc.poll() is None and time.monotonic() - t0 < seconds + 60:
            if start is None and time.monotonic() - t0 >= WARM_UP_S:
                start = (time.monotonic(), tree_cpu_seconds(proc.pid))
                tree.poll_threads(at_start=True)
            elif start is not None:
                tree.poll_threads()
            if start is not None:
                tree.sample_memory(time.monotonic() - start[0])
            reading = tree_cpu_seconds(proc.pid)  # the last reading before it exits
            if reading:
                cpu, t_end = reading, time.monotonic()
            time.sleep(POLL_S)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if start is None:
        raise SystemExit(f"{mode}: the sender exited within {WARM_UP_S} s")
    elapsed = t_end - start[0]
    sent = int(out.split()[-1])  # every report, the first (before the window) included
    threads = tree.result(elapsed) if tree.threads else {}
    collector_cpu = tree_cpu_seconds(collector.proc.pid) - collector_cpu0  # type: ignore[union-attr]
    return {
        "mode": mode,
        "seconds": round(elapsed, 1),
        "reports": sent,
        # the whole process after start-up and the first report: idle threads and reports
        "cpu_s_per_hour": round((cpu - start[1]) / elapsed * 3600, 3),
        "cpu_ms_per_report": round((cpu - start[1]) * 1000 / max(sent - 1, 1), 3),
        "threads_wakeups_per_s": threads.get("wakeups_per_s"),
        "threads": threads.get("threads"),
        "rss_mib_max": threads.get("rss_mib_max"),
        "pss_mib_max": threads.get("pss_mib_max"),
        # its whole CPU over the run (idle work included) per report
        "collector_cpu_ms_per_report": round(collector_cpu * 1000 / sent, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--interval", default="15s")
    parser.add_argument("--mode", action="append", help="kept, kept:ENV=VALUE or reconnect")
    args = parser.parse_args()
    modes = args.mode or ["kept", "reconnect"]
    interval = parse_duration(args.interval)
    results = []
    with tempfile.TemporaryDirectory(prefix="dcguard-channel-") as name:
        tmp = Path(name)
        collector = TlsCollector(tmp / "collector")
        collector.start()
        try:
            agent = Agent(tmp / "agent", [collector.grpc_address], insecure=False)
            enrolled = enroll(agent, collector, collector.token("testhost"))
            assert enrolled.returncode == 0, enrolled  # type: ignore[attr-defined]
            for mode in modes:
                results.append(measure(mode, collector, agent.state_dir, interval, args.seconds))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        finally:
            collector.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
