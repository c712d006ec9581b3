"""Measure the agent's CPU per cycle and its RSS while it reports to a real collector.

Runs a collector and an agent (default sources) on 127.0.0.1, lets the agent
warm up, then reads the agent's CPU time and RSS from /proc over a window of
cycles. Usage:

    .venv/bin/python bench/agent_cycle.py [--interval 1s] [--cycles 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcguard.common.durations import parse_duration
from tests.support import Agent, Collector, metric, wait_for

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--cycles", type=int, default=60)
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    with tempfile.TemporaryDirectory() as tmp:
        collector = Collector(Path(tmp) / "collector")
        collector.start()
        agent = Agent(Path(tmp) / "agent", [collector.grpc_address], interval=args.interval)
        agent.start()
        try:
            stored = lambda: metric(collector.metrics(), "dcguard_agent_reports_stored_total",  # noqa: E731
                                    host="testhost") or 0
            wait_for(lambda: stored() >= 3, timeout=60, message="agent warm-up")
            assert agent.proc is not None
            pid = agent.proc.pid
            start_cpu, start_stored = cpu_seconds(pid), stored()
            time.sleep(interval * args.cycles)
            cpu, cycles = cpu_seconds(pid) - start_cpu, stored() - start_stored
            rss = rss_bytes(pid)
        finally:
            agent.stop()
            collector.stop()
    print(f"interval {args.interval}: {cycles} cycles, CPU {cpu * 1000 / max(cycles, 1):.2f} ms "
          f"per cycle (clock tick {1000 / TICKS:.0f} ms), RSS {rss / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
