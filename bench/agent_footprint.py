"""The agent's footprint on a server, in real time, beside node_exporter.

For --minutes N of wall time (default 10), side by side:
- the agent (`dcguard-agent run`, with its systemd unit's Environment=
  settings) with every default source at its default intervals (reports
  every 15 s, fim 5 min, ports 30 s, smart 10 min), enrolled over mTLS
  and delivering to a real collector on 127.0.0.1 through a counting TCP
  proxy;
- Debian's prometheus-node-exporter, scraped every 15 s by a real Debian
  Prometheus started with a temporary config and data dir.

Counted for each WHOLE process tree (the agent with the journalctl and
smartctl it runs; node_exporter): CPU from /proc/PID/stat (utime+stime of
every live process plus cutime+cstime of reaped children) at start and
end; per thread, context switches (voluntary+nonvoluntary: how often it
wakes) and schedstat run time, polled every second so threads that come
and go are seen (a thread that lives less than a second between polls is
missed: the per-thread sum is a lower bound, the stat figure the total);
RSS and PSS (/proc/PID/smaps_rollup) every 15 s with a least-squares slope.
Bytes per report are what the agent sends and receives through the proxy
(TLS handshakes included) per report stored, beside one gzip'd scrape of
node_exporter. The collector's and Prometheus's own cost is shown for
information only: they are the central side, not the server's.

The agent and node_exporter start, warm up (the agent's first report and
first fim/ports scans, the baseline each start does once), and then the
window begins. Prints JSON, then a Markdown table.

    .venv/bin/python bench/agent_footprint.py [--minutes 10]

The profile of one report cycle, accelerated, is bench/agent_cycle_profile.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_cycle_profile import CountingProxy
from bench.procstat import (
    command_line,
    descendants,
    load_average,
    memory_mib,
    thread_activity,
    tree_cpu_seconds,
    tree_memory_mib,
)
from tests.support import Agent, metric, wait_for
from tests.trust_support import TlsCollector, enroll

UNIT = ROOT / "deploy" / "systemd" / "dcguard-agent.service"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_INTERVAL_S = 15
THREAD_POLL_S = 1.0
MEMORY_EVERY_S = 15.0


@dataclass
class ThreadSeen:
    process: str
    name: str
    first: tuple[int, float]  # (context switches, CPU s) when first seen in the window
    last: tuple[int, float]


@dataclass
class Tree:
    """One process tree followed through the window."""

    label: str
    pid: int
    threads: dict[tuple[int, int], ThreadSeen] = field(default_factory=dict)
    processes: dict[int, str] = field(default_factory=dict)
    memory: list[tuple[float, float, float]] = field(default_factory=list)  # (t, rss, pss)
    cpu0: float = 0.0

    def poll_threads(self, at_start: bool = False) -> None:
        """Every thread of every live process in the tree; one born in the window counts from 0."""
        for pid in (self.pid, *descendants(self.pid)):
            if pid not in self.processes:
                self.processes[pid] = command_line(pid)
            process = self.processes[pid].split(" ", 1)[0].rsplit("/", 1)[-1]
            for tid, (name, switches, cpu) in thread_activity(pid).items():
                seen = self.threads.get((pid, tid))
                if seen is None:
                    first = (switches, cpu) if at_start else (0, 0.0)
                    self.threads[(pid, tid)] = ThreadSeen(process, name, first, (switches, cpu))
                else:
                    seen.last = (switches, cpu)

    def sample_memory(self, t: float) -> None:
        rss, pss = tree_memory_mib(self.pid)
        self.memory.append((t, rss, pss))

    def result(self, seconds: float) -> dict[str, object]:
        cpu = tree_cpu_seconds(self.pid) - self.cpu0
        per_thread: dict[tuple[str, str], list[float]] = {}
        for seen in self.threads.values():
            entry = per_thread.setdefault((seen.process, seen.name), [0, 0, 0.0])
            entry[0] += 1
            entry[1] += seen.last[0] - seen.first[0]
            entry[2] += seen.last[1] - seen.first[1]
        threads = [
            {
                "process": process,
                "thread": name,
                "threads_seen": int(count),
                "wakeups_per_s": round(switches / seconds, 2),
                "cpu_s_per_hour": round(ran / seconds * 3600, 3),
            }
            for (process, name), (count, switches, ran) in sorted(
                per_thread.items(), key=lambda item: -item[1][1]
            )
        ]
        rss = [m[1] for m in self.memory] or [0.0]
        pss = [m[2] for m in self.memory] or [0.0]
        return {
            "cpu_s": round(cpu, 3),
            "cpu_s_per_hour": round(cpu / seconds * 3600, 3),
            "threads_cpu_s_per_hour": round(
                sum(e[2] for e in per_thread.values()) / seconds * 3600, 3
            ),
            "wakeups_per_s": round(sum(e[1] for e in per_thread.values()) / seconds, 2),
            "threads": threads,
            "rss_mib_mean": round(sum(rss) / len(rss), 1),
            "rss_mib_max": round(max(rss), 1),
            "pss_mib_mean": round(sum(pss) / len(pss), 1),
            "pss_mib_max": round(max(pss), 1),
            "rss_mib_per_hour_slope": round(_slope([(m[0], m[1]) for m in self.memory]) * 3600, 3),
            "memory_samples": len(self.memory),
            # each with its (RSS, PSS) MiB at the end, or "ended" for one that exited
            "processes_counted": [
                f"{pid} {cmd} ({_memory_at_end(pid)})"
                for pid, cmd in sorted(self.processes.items())
            ],
        }


def _memory_at_end(pid: int) -> str:
    rss, pss = memory_mib(pid)
    return f"RSS {rss:.1f} MiB, PSS {pss:.1f} MiB" if rss else "ended"


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """The Environment= settings of the agent's systemd unit: the bench runs it as installed."""
    found: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line[len("Environment=") :].partition("=")
            found[key] = value
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _get(url: str, gzipped: bool = False) -> bytes:
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return bytes(r.read())


def _answers(url: str) -> bool:
    try:
        _get(url)
        return True
    except OSError:
        return False


def node_exporter_and_prometheus(stack: ExitStack, tmp: Path) -> tuple[int, int, int]:
    """Start both on loopback ports; (node_exporter pid, its port, Prometheus's port)."""
    for binary, package in (
        (NODE_EXPORTER, "prometheus-node-exporter"),
        (PROMETHEUS, "prometheus"),
    ):
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} is missing: apt-get install {package}")
    node_port, prom_port = _free_port(), _free_port()
    node = stack.enter_context(
        _process([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"])
    )
    config = tmp / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
        "scrape_configs:\n  - job_name: node\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{node_port}']\n"
    )
    stack.enter_context(
        _process(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ]
        )
    )
    wait_for(lambda: _answers(f"http://127.0.0.1:{node_port}/metrics"), 30, 0.2, "node_exporter")
    wait_for(lambda: _answers(f"http://127.0.0.1:{prom_port}/-/ready"), 60, 0.2, "prometheus")
    return node.pid, node_port, prom_port


def prometheus_scrapes(prom_port: int, minutes: int) -> int:
    """How many scrapes of node_exporter Prometheus recorded over the window."""
    query = urllib.parse.quote(f'count_over_time(up{{job="node"}}[{minutes}m])')
    body = json.loads(_get(f"http://127.0.0.1:{prom_port}/api/v1/query?query={query}"))
    results = body["data"]["result"]
    return int(float(results[0]["value"][1])) if results else 0


def run(minutes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="dcguard-footprint-") as name, ExitStack() as stack:
        tmp = Path(name)
        collector = TlsCollector(tmp / "collector")
        collector.start()
        stack.callback(collector.stop)
        proxy = CountingProxy(collector.grpc_port)
        agent = Agent(tmp / "agent", [f"127.0.0.1:{proxy.port}"], interval="15s", insecure=False)
        enrolled = enroll(agent, collector, collector.token("testhost"))
        assert enrolled.returncode == 0, enrolled  # type: ignore[attr-defined]
        agent.env.update(unit_environment())
        agent.start()
        stack.callback(agent.stop)
        node_pid, node_port, prom_port = node_exporter_and_prometheus(stack, tmp)

        def stored() -> int:
            samples = collector.metrics()
            return int(metric(samples, "dcguard_agent_reports_stored_total", host="testhost") or 0)

        wait_for(lambda: stored() >= 1, 60, 0.5, "the agent's first report")
        wait_for(
            lambda: all(
                (agent.state_dir / f"{n}-baseline.json").exists() for n in ("fim", "ports")
            ),
            180,
            0.5,
            "the agent's first fim and ports scans",
        )
        assert agent.proc is not None
        trees = [Tree("agent", agent.proc.pid), Tree("node_exporter", node_pid)]
        side = [Tree("collector", collector.proc.pid)]  # type: ignore[union-attr]
        load_start = load_average()
        stored0, up0, down0, conns0 = (
            stored(),
            proxy.upstream_bytes,
            proxy.downstream_bytes,
            proxy.connections,
        )
        t0 = time.monotonic()
        for tree in trees + side:
            tree.cpu0 = tree_cpu_seconds(tree.pid)
            tree.poll_threads(at_start=True)
            tree.sample_memory(0.0)
        end, next_memory = t0 + minutes * 60, t0 + MEMORY_EVERY_S
        while (now := time.monotonic()) < end:
            time.sleep(min(THREAD_POLL_S, end - now))
            for tree in trees:
                tree.poll_threads()
            if time.monotonic() >= next_memory:
                next_memory += MEMORY_EVERY_S
                for tree in trees + side:
                    tree.sample_memory(time.monotonic() - t0)
        seconds = time.monotonic() - t0
        for tree in trees + side:
            tree.poll_threads()
            tree.sample_memory(seconds)
        results = {tree.label: tree.result(seconds) for tree in trees + side}
        reports = stored() - stored0
        load_end = load_average()
        scrape = _get(f"http://127.0.0.1:{node_port}/metrics", gzipped=True)
        agent_log = agent.log()
        wire = {
            "reports_stored": reports,
            "connections": proxy.connections - conns0,
            "agent_sent_bytes_per_report": round((proxy.upstream_bytes - up0) / max(reports, 1)),
            "agent_received_bytes_per_report": round(
                (proxy.downstream_bytes - down0) / max(reports, 1)
            ),
            "node_exporter_gzip_bytes_per_scrape": len(scrape),
            "node_exporter_raw_bytes_per_scrape": len(gzip.decompress(scrape)),
            "prometheus_scrapes": prometheus_scrapes(prom_port, minutes),
        }
    agent_cpu = float(results["agent"]["cpu_s_per_hour"])  # type: ignore[arg-type]
    node_cpu = float(results["node_exporter"]["cpu_s_per_hour"])  # type: ignore[arg-type]
    return {
        "command": f"bench/agent_footprint.py --minutes {minutes}",
        "seconds": round(seconds, 1),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "cpus": os.cpu_count(),
        "agent_environment": unit_environment(),
        "agent_errors_in_log": sum("Traceback" in line for line in agent_log.splitlines()),
        "cpu_ratio_agent_to_node_exporter": round(agent_cpu / node_cpu, 3) if node_cpu else None,
        "wire": wire,
        **results,
    }


def markdown(result: dict[str, object]) -> str:
    agent: dict[str, object] = result["agent"]  # type: ignore[assignment]
    node: dict[str, object] = result["node_exporter"]  # type: ignore[assignment]
    wire: dict[str, object] = result["wire"]  # type: ignore[assignment]
    rows = [
        ("CPU, whole tree (CPU-s/h)", agent["cpu_s_per_hour"], node["cpu_s_per_hour"]),
        (
            "  of it in threads seen every 1 s",
            agent["threads_cpu_s_per_hour"],
            node["threads_cpu_s_per_hour"],
        ),
        ("wakeups/s, all threads", agent["wakeups_per_s"], node["wakeups_per_s"]),
        (
            "RSS MiB, tree (mean / max)",
            f"{agent['rss_mib_mean']} / {agent['rss_mib_max']}",
            f"{node['rss_mib_mean']} / {node['rss_mib_max']}",
        ),
        (
            "PSS MiB, tree (mean / max)",
            f"{agent['pss_mib_mean']} / {agent['pss_mib_max']}",
            f"{node['pss_mib_mean']} / {node['pss_mib_max']}",
        ),
        ("RSS slope (MiB/h)", agent["rss_mib_per_hour_slope"], node["rss_mib_per_hour_slope"]),
        (
            "bytes per report / scrape",
            f"{wire['agent_sent_bytes_per_report']} sent + "
            f"{wire['agent_received_bytes_per_report']} received (TLS incl.)",
            f"{wire['node_exporter_gzip_bytes_per_scrape']} gzip'd "
            f"({wire['node_exporter_raw_bytes_per_scrape']} raw)",
        ),
    ]
    lines = [
        f"`{result['command']}`: {result['seconds']} s real time, {result['cpus']} CPUs, "
        f"load average {result['load_average_start']} at start, "
        f"{result['load_average_end']} at end; "
        f"{wire['reports_stored']} reports over {wire['connections']} connections, "
        f"{wire['prometheus_scrapes']} Prometheus scrapes. "
        f"CPU ratio agent / node_exporter: **{result['cpu_ratio_agent_to_node_exporter']}**.",
        "",
        "| | agent tree | node_exporter tree |",
        "|---|---|---|",
        *(f"| {name} | {a} | {n} |" for name, a, n in rows),
        "",
        "| process | thread | seen | wakeups/s | CPU-s/h |",
        "|---|---|---|---|---|",
    ]
    for label in ("agent", "node_exporter"):
        tree: dict[str, object] = result[label]  # type: ignore[assignment]
        for t in tree["threads"]:  # type: ignore[attr-defined]
            lines.append(
                f"| {t['process']} | {t['thread']} | {t['threads_seen']} | "
                f"{t['wakeups_per_s']} | {t['cpu_s_per_hour']} |"
            )
    collector: dict[str, object] = result["collector"]  # type: ignore[assignment]
    lines += [
        "",
        f"Central side, for information: the collector tree used {collector['cpu_s_per_hour']} "
        f"CPU-s/h for this one agent, RSS {collector['rss_mib_max']} MiB.",
        "Processes counted: "
        + "; ".join(
            f"{label}: " + ", ".join(result[label]["processes_counted"])  # type: ignore[index]
            for label in ("agent", "node_exporter")
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=10, help="length of the window (default 10)")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.minutes < 1:
        parser.error("--minutes must be at least 1")
    if shutil.which("journalctl") is None:
        print("note: no journalctl here, so the agent runs no journal follower", file=sys.stderr)
    result = run(args.minutes)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print()
    print(markdown(result))


if __name__ == "__main__":
    main()
