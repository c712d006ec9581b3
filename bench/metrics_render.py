"""Time the collector's /metrics rendering with many hosts held in memory.

Builds N synthetic hosts (each with 10 filesystems, as a typical department
server) in the real StateCache and times one full render, the work a scrape
does. Usage: .venv/bin/python bench/metrics_render.py [--hosts 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcguard.collector.config import load_config
from dcguard.collector.exposition.families.registry import HostRenderer, default_groups
from dcguard.collector.exposition.hosts import StateCache
from dcguard.collector.store import AgentRecord
from tests.submit import make_report


def record(index: int, now: float) -> AgentRecord:
    report = make_report(1, collected_at=now)
    report.host.memory_total_bytes = 8 * 2**30
    for fs in range(10):
        report.filesystems.add(
            mountpoint=f"/data{fs}",
            device=f"/dev/sd{fs}",
            fstype="ext4",
            size_bytes=2**40,
            avail_bytes=2**39,
            files=10**6,
        )
    report.sources.add(name="host", success=True)
    return AgentRecord(
        f"host{index:05d}",
        f"dept{index % 40:02d}",
        "0.1.0",
        "Debian 12",
        "6.1.0",
        15.0,
        "i",
        now,
        now,
        1,
        1,
        0,
        report,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "collector.toml"
        path.write_text('[server]\ngrpc_listen = "127.0.0.1:0"\ninsecure = true\n')
        config = load_config(path)
    now = time.time()
    state = StateCache(HostRenderer(default_groups(config)))
    started = time.perf_counter()
    state.load([record(i, now) for i in range(args.hosts)])
    load = time.perf_counter() - started
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        text = state.render(time.time())
        timings.append(time.perf_counter() - started)
    print(
        f"{args.hosts} hosts: load+render-all {load:.2f}s; scrape render median "
        f"{sorted(timings)[2] * 1000:.0f} ms, {len(text.encode()) / 2**20:.1f} MiB, "
        f"{text.count(chr(10)) - text.count('# ')} samples"
    )


if __name__ == "__main__":
    main()
