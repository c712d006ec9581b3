"""A profile, not a per-hour cost: the agent's report cycle, accelerated, beside node_exporter.

Cycles run every 100 ms by default, so whatever the agent costs per second
of wall time (grpc's threads, timers, followers) is divided by the
acceleration: its "per hour" figures are work per cycle x 240, useful to
compare one version of a cycle with another, never the agent's cost on a
server. That is bench/agent_footprint.py, in real time.

- CPU: the agent's CPU per hour at a 15 s interval vs node_exporter's CPU
  per scrape x 240 scrapes. The agent's figure has two parts:
  * its report cycles (all default sources, delivering to a real collector):
    CPU per cycle x 240. The CPU is the agent process's, plus the tools it
    runs (reaped children, and the `journalctl --follow` readers still
    running). The sources that work on their own schedule (fim, ports,
    smart) are set to a 24 h interval here, and measuring starts only after
    their first scan, so none of their work falls into the cycles;
  * those scanners: bench/scanner_cost.py, in a process of its own, measures
    each one's CPU per run (smartctl included) and scales it by its runs per
    hour at the default interval (fim 5 min, ports 30 s, smart 10 min).
  Cycles are accelerated but the scanners are not, so counting their work
  inside the accelerated cycles would undercount it by the acceleration.
- Memory: the agent's RSS sampled across the run (by default 960 cycles,
  four simulated hours) and the slope of a least-squares fit.
- Wire: bytes the agent sends to the collector per report, counted by a TCP
  proxy between them, vs the gzip'd body of a node_exporter scrape.

Cycles are accelerated (--interval) so an hour is simulated in seconds; the
work per cycle is the same. Usage:

    .venv/bin/python bench/agent_cycle_profile.py [--cycles 960] [--interval 100ms]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import rss_mib, tree_cpu_seconds
from dcguard.common.durations import parse_duration
from tests.support import Agent, Collector, metric, wait_for

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
CYCLES_PER_HOUR = 240  # at a 15 s interval
# Scanners out of the way of the cycles: their cost is measured per run instead.
SCANNERS_ASIDE = """
[security.fim]
interval = "24h"
[security.ports]
interval = "24h"
[storage]
smart_interval = "24h"
"""


class CountingProxy:
    """A loopback TCP proxy that counts the bytes each direction carries, and its connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.upstream_bytes = 0
        self.downstream_bytes = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            while data := await src.read(65536):
                if up:
                    self.upstream_bytes += len(data)
                else:
                    self.downstream_bytes += len(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, True), pipe(up_reader, writer, False), return_exceptions=True
        )


def measure_agent(cycles: int, interval: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        collector = Collector(Path(tmp) / "collector")
        collector.start()
        proxy = CountingProxy(collector.grpc_port)
        agent = Agent(
            Path(tmp) / "agent",
            [f"127.0.0.1:{proxy.port}"],
            interval=interval,
            extra_config=SCANNERS_ASIDE,
        )
        agent.start()
        try:

            def stored() -> int:
                return int(
                    metric(
                        collector.metrics(), "dcguard_agent_reports_stored_total", host="testhost"
                    )
                    or 0
                )

            wait_for(lambda: stored() >= 5, timeout=60, message="agent warm-up")
            # The first (baseline) scans are committed once done; they happen once per start.
            wait_for(
                lambda: all(
                    (agent.state_dir / f"{name}-baseline.json").exists()
                    for name in ("fim", "ports")
                ),
                timeout=120,
                message="the first fim and ports scans",
            )
            assert agent.proc is not None
            pid = agent.proc.pid
            cpu0, stored0 = tree_cpu_seconds(pid), stored()
            bytes0, t0 = proxy.upstream_bytes, time.time()
            rss: list[tuple[float, float]] = []
            deadline = time.monotonic() + cycles * parse_duration(interval) * 3 + 60
            while stored() - stored0 < cycles and time.monotonic() < deadline:
                rss.append((time.time() - t0, rss_mib(pid)))
                time.sleep(max(parse_duration(interval) * 20, 0.5))
            done = stored() - stored0
            cpu = tree_cpu_seconds(pid) - cpu0
            wire = proxy.upstream_bytes - bytes0
            rss.append((time.time() - t0, rss_mib(pid)))
        finally:
            agent.stop()
            collector.stop()
    xs, ys = [x for x, _ in rss], [y for _, y in rss]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs) or 1.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in rss) / var
    per_cycle_s = parse_duration(interval)
    return {
        "cycles": done,
        "cpu_ms_per_cycle": round(cpu * 1000 / max(done, 1), 2),
        "cycles_cpu_s_per_hour": round(cpu / max(done, 1) * CYCLES_PER_HOUR, 3),
        "rss_mib_end": ys[-1],
        "rss_mib_max": max(ys),
        # slope is MiB per wall second; a simulated hour is 240 cycles of wall time
        "rss_mib_per_simulated_hour": round(slope * CYCLES_PER_HOUR * per_cycle_s, 3),
        "wire_bytes_per_report": round(wire / max(done, 1), 1),
        "wire_bytes_per_hour": round(wire / max(done, 1) * CYCLES_PER_HOUR),
    }


def measure_scanners(runs: int) -> dict[str, dict[str, float]]:
    """CPU per run and per hour of each scanner at its default interval (scanner_cost.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Agent(Path(tmp), ["127.0.0.1:9"], interval="15s").config_path
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "scanner_cost.py"),
                "--config",
                str(config),
                "--runs",
                str(runs),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
    scanners: dict[str, dict[str, float]] = json.loads(result.stdout)
    return scanners


def measure_node_exporter(scrapes: int) -> dict[str, object]:
    port = 29100
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:

        def scrape() -> bytes:
            request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return bytes(response.read())

        wait_for(lambda: _try(scrape), timeout=30, message="node_exporter")
        for _ in range(5):
            scrape()
        cpu0 = tree_cpu_seconds(proc.pid)
        sizes = [len(scrape()) for _ in range(scrapes)]
        cpu = tree_cpu_seconds(proc.pid) - cpu0
        body = scrape()
        return {
            "scrapes": scrapes,
            "cpu_ms_per_scrape": round(cpu * 1000 / scrapes, 2),
            "cpu_s_per_hour": round(cpu / scrapes * CYCLES_PER_HOUR, 3),
            "rss_mib": rss_mib(proc.pid),
            "gzip_bytes_per_scrape": round(sum(sizes) / len(sizes)),
            "raw_bytes_per_scrape": len(gzip.decompress(body)),
            "wire_bytes_per_hour": round(sum(sizes) / len(sizes) * CYCLES_PER_HOUR),
        }
    finally:
        proc.terminate()
        proc.wait(10)


def _try(fn: object) -> bool:
    try:
        fn()  # type: ignore[operator]
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=960)
    parser.add_argument("--interval", default="100ms")
    parser.add_argument(
        "--scanner-runs",
        type=int,
        default=20,
        help="runs of each scanner to measure its cost per run",
    )
    args = parser.parse_args()
    node = measure_node_exporter(min(args.cycles, 480))
    agent = measure_agent(args.cycles, args.interval)
    scanners = measure_scanners(args.scanner_runs)
    agent["scanners"] = scanners
    agent["scanners_cpu_s_per_hour"] = round(
        sum(entry["cpu_s_per_hour"] for entry in scanners.values()), 3
    )
    agent["cpu_s_per_hour"] = round(
        float(agent["cycles_cpu_s_per_hour"])  # type: ignore[arg-type]
        + float(agent["scanners_cpu_s_per_hour"]),
        3,
    )
    ratios = {
        key: round(float(agent[key]) / float(node[key]), 3)  # type: ignore[arg-type]
        for key in ("cpu_s_per_hour", "wire_bytes_per_hour")
    }
    report = {
        "kind": "profile, not a per-hour cost (cycles accelerated)",
        "agent": agent,
        "node_exporter": node,
        "agent/node_exporter": ratios,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
