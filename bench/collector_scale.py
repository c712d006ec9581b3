"""Collector at the centre: how many agents one collector carries, production-shaped.

For each N in --agents: a fresh collector (mTLS, its CA made by `ca init`)
and the load generator (bench/loadgen.py, its own worker processes)
simulating N enrolled agents: each with its own client certificate, its own
long-lived mTLS connection, gzip'd Submits every 15 s in real time. First
every agent connects (N handshakes: what a collector restart with N agents
reconnecting costs, timed apart), then --duration seconds of rounds.

N passes when nothing is lost (every acknowledged report is stored, no
failed call, no sequence gap: dcguard_agent_reports_lost_total stays 0) and
p99 Submit latency is under 100 ms. Each row also has the collector's CPU
per report during the rounds, the peak RSS and open file descriptors of the
collector's whole process tree (ingest processes included), the load
generator's own CPU (in cores: it shares the machine's cores with the
collector), the load average and the row's wall time. Each series of
--ingest-processes stops at its first N that fails.

Client certificates are minted once per run for the largest N by the
collector's own CA code and recorded in its registry (bench/agent_certs.py),
in a temp dir that is removed afterwards; each fresh collector starts from a
copy of that CA and registry.

At --detail-at hosts (with the first --ingest-processes value) it measures,
directly: /metrics scrape time and size, the database's size by table,
restart to serving /metrics, RSS after the restart; then, unless
--push-budget is 0, it pushes the same per-host series to Pushgateway for
--push-budget seconds. Prints JSON lines, then a Markdown table and the
largest N passed per series.

    flock /tmp/dcguard-bench.lock .venv/bin/python bench/collector_scale.py \
        --agents 5000,10000,12500,15000 --ingest-processes 2,0 --duration 45 --push-budget 0

--loadgen-processes P gives the generator P worker processes (default: one
per 2,500 agents), to check that the generator is not what saturates.
--plaintext runs the old, NOT production-shaped load instead (no TLS, no
gzip, 64 connections shared by all agents; an insecure collector).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_certs import mint
from bench.loadgen import CONNECTED
from bench.procstat import tree_cpu_seconds, tree_fds, tree_rss_mib
from bench.pushgw import ok, pushgateway, timed_get
from dcguard.collector.fdlimit import raise_open_files_limit
from tests.support import Collector, wait_for

INTERVAL = 15.0
_COUNTER = re.compile(r"^(dcguard_agent_reports_(?:stored|lost)_total)\{[^}]*\} (\S+)$", re.M)


def database_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("collector.db*"))


def stored_reports(data_dir: Path) -> int:
    """Reports stored so far, read beside the running collector (WAL lets it)."""
    db = sqlite3.connect(f"file:{data_dir / 'collector.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT COALESCE(SUM(reports_stored), 0) FROM agents").fetchone()[0])
    finally:
        db.close()


def table_sizes(data_dir: Path) -> dict[str, dict[str, int]]:
    """Bytes and rows of each table with its indexes (dbstat), after a checkpoint."""
    db = sqlite3.connect(data_dir / "collector.db")
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        out: dict[str, dict[str, int]] = {}
        for table, index in db.execute(
            "SELECT tbl_name, name FROM sqlite_schema WHERE type IN ('table', 'index')"
        ):
            entry = out.setdefault(table, {"bytes": 0, "rows": 0})
            entry["bytes"] += int(pages.get(index, 0))
        for table, entry in out.items():
            # Names come from sqlite_schema, not from input.
            count = f'SELECT COUNT(*) FROM "{table}"'  # noqa: S608
            entry["rows"] = int(db.execute(count).fetchone()[0])
        return out
    finally:
        db.close()


def reported_counters(collector: Collector) -> tuple[int, int]:
    """Sum of stored and lost reports as /metrics shows them (a line filter: fast at 10k hosts)."""
    text = fetch(collector.metrics_url)
    totals = {"dcguard_agent_reports_stored_total": 0.0, "dcguard_agent_reports_lost_total": 0.0}
    for name, value in _COUNTER.findall(text):
        totals[name] += float(value)
    return (
        int(totals["dcguard_agent_reports_stored_total"]),
        int(totals["dcguard_agent_reports_lost_total"]),
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=300) as response:
        return str(response.read().decode())


@dataclass(frozen=True)
class Shape:
    """How the generator talks to the collector: production-shaped unless plaintext."""

    certs: Path | None  # None: --plaintext
    reconnect: bool = False
    processes: int = 0  # the generator's worker processes; 0: its default

    def loadgen_args(self) -> list[str]:
        args = ["--processes", str(self.processes)] if self.processes else []
        if self.certs is None:
            return [*args, "--plaintext"]
        args += ["--ca", str(self.certs / "ca.crt"), "--certs", str(self.certs)]
        return args + (["--reconnect-per-report"] if self.reconnect else [])


class _Peaks:
    """Peak RSS and open descriptors of the collector's tree, sampled while the load runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_mib = 0.0
        self.fds = 0

    def sample(self) -> None:
        self.rss_mib = max(self.rss_mib, tree_rss_mib(self.pid))
        self.fds = max(self.fds, tree_fds(self.pid))


class Generator:
    """One load generator process (bench/loadgen.py) driving one collector.

    The one way the benchmarks start and read the generator. It notes the
    collector's tree CPU when every agent is connected (its "connected" line),
    so the CPU of the rounds is timed apart from the N handshakes.
    """

    def __init__(
        self,
        collector: Collector,
        agents: int,
        duration: float,
        shape: Shape,
        first_agent: int = 0,
    ) -> None:
        assert collector.proc is not None
        self.pid = collector.proc.pid
        self.cpu_start = tree_cpu_seconds(self.pid)
        self.connected: list[float] = []  # the collector's tree CPU when every agent was connected
        self._errors: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "loadgen.py"),
                "--target",
                collector.grpc_address,
                "--agents",
                str(agents),
                "--first-agent",
                str(first_agent),
                "--duration",
                str(duration),
                "--interval",
                str(INTERVAL),
                *shape.loadgen_args(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._watch_stderr, daemon=True)
        self._reader.start()

    def _watch_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.startswith(CONNECTED) and not self.connected:
                self.connected.append(tree_cpu_seconds(self.pid))
            else:
                self._errors.append(line)

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self) -> tuple[dict[str, Any], float]:
        """The generator's JSON line; the collector's CPU seconds since every agent connected."""
        # stdout only: the reader thread owns stderr.
        out = self.proc.stdout.read() if self.proc.stdout else ""
        self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.returncode:
            raise RuntimeError(
                f"loadgen failed with {self.proc.returncode}: {''.join(self._errors)[-2000:]}"
            )
        cpu = tree_cpu_seconds(self.pid) - (self.connected[0] if self.connected else self.cpu_start)
        load: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        if self.connected:
            load["collector_connect_cpu_s"] = round(self.connected[0] - self.cpu_start, 1)
        return load, cpu

    def stop(self) -> None:
        """Kill the generator if it still runs (a failed row must not leave it behind)."""
        if self.running():
            self.proc.kill()
            self.proc.wait()


def run_load(collector: Collector, agents: int, duration: float, shape: Shape) -> dict[str, Any]:
    """Drive N agents; the collector's CPU from "connected" on, its peaks, the database's growth."""
    wall0, load0 = time.monotonic(), os.getloadavg()[0]
    generator = Generator(collector, agents, duration, shape)
    peaks = _Peaks(generator.pid)
    warm: tuple[int, int] | None = None
    try:
        while generator.running():
            time.sleep(0.5)
            peaks.sample()
            if generator.connected and warm is None and time.monotonic() - wall0 > INTERVAL + 2:
                warm = (database_bytes(collector.data_dir), stored_reports(collector.data_dir))
        load, cpu = generator.finish()
    finally:
        generator.stop()
    stored, lost = reported_counters(collector)
    end = (database_bytes(collector.data_dir), stored_reports(collector.data_dir))
    load.update(
        stored=stored,
        lost=lost,
        zero_loss=not load["failures"] and stored == load["stored_ok"] and lost == 0,
        collector_cpu_ms_per_report=round(cpu * 1000 / max(1, stored), 3),
        collector_connect_cpu_s=load.get("collector_connect_cpu_s"),
        rss_mib=round(peaks.rss_mib, 1),
        fds=peaks.fds,
        db_bytes=end[0],
        load1_start=round(load0, 2),
        load1_end=round(os.getloadavg()[0], 2),
        row_s=round(time.monotonic() - wall0, 1),
    )
    load["passed"] = bool(load["zero_loss"]) and float(load["p99_ms"]) < 100
    if warm is not None and end[1] > warm[1]:
        per_report = (end[0] - warm[0]) / (end[1] - warm[1])
        load["db_bytes_per_report"] = round(per_report)
        load["db_growth_gb_per_day"] = round(per_report * agents / INTERVAL * 86400 / 1e9, 1)
    return load


def detail(collector: Collector, n: int) -> tuple[dict[str, Any], str]:
    """Scrape, size by table and restart at n hosts; returns the figures and the page."""
    scrape_s, raw, packed = timed_get(collector.metrics_url)
    page = fetch(collector.metrics_url)
    collector.stop()
    tables = table_sizes(collector.data_dir)
    started = time.monotonic()
    collector.start()
    wait_for(lambda: ok(collector.metrics_url), timeout=120, message="metrics after restart")
    restart_s = time.monotonic() - started
    assert collector.proc is not None
    figures = {
        "agents": n,
        "scrape_s": round(scrape_s, 3),
        "bytes": raw,
        "gzip_bytes": packed,
        "restart_s": round(restart_s, 2),
        "rss_after_restart_mib": round(tree_rss_mib(collector.proc.pid), 1),
        "tables": tables,
    }
    return figures, page


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| agents | ingest processes | shape | connect s | reports/s | stored | lost | failures "
        "| p50 ms | p99 ms | collector CPU ms/report | collector tree RSS MiB | collector tree "
        "fds | generator cores | load avg 1 min (start → end) | row wall s | passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agents']:,} | {r['ingest_processes']} | {r['mode']}"
            f"{' reconnecting' if r['reconnect_per_report'] else ''} | {r['connect_s']} | "
            f"{r['rate_per_s']} | {r['stored']:,} | {r['lost']} | "
            f"{sum(r['failures'].values())} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['collector_cpu_ms_per_report']} | {r['rss_mib']} | {r['fds']:,} | "
            f"{r['loadgen_cores']} | {r['load1_start']} → {r['load1_end']} | {r['row_s']} | "
            f"{'yes' if r['passed'] else '**no**'} |"
        )
    return "\n".join(lines)


def template(base: Path, agents: int, plaintext: bool) -> tuple[Path | None, Path | None]:
    """A collector data dir with a CA and N agents' certificates recorded (none if plaintext).

    Each fresh collector starts from a copy: the certificates are minted once per run.
    """
    if plaintext:
        return None, None
    maker = _collector(base / "template", plaintext, ingest_processes=0)
    init = maker.cli("ca", "init", "--name", "localhost", "--address", "127.0.0.1")
    if init.returncode:
        raise RuntimeError(f"ca init failed: {init.stderr}")
    certs = base / "certs"
    print(json.dumps({"minted": mint(maker.config_path, agents, certs)}), flush=True)
    return maker.data_dir, certs


def _collector(workdir: Path, plaintext: bool, ingest_processes: int) -> Collector:
    if plaintext:
        return Collector(
            workdir, server_extra="insecure = true\n", ingest_processes=ingest_processes
        )
    return Collector(
        workdir,
        server_extra="insecure = false\n",
        ingest_processes=ingest_processes,
        extra_config='[tls]\nenroll_listen = "127.0.0.1:0"\n',
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="5000,10000,12500,15000")
    parser.add_argument(
        "--duration", type=float, default=45, help="seconds of rounds after every agent connected"
    )
    parser.add_argument("--detail-at", type=int, default=0)
    parser.add_argument("--push-budget", type=float, default=0)
    parser.add_argument(
        "--ingest-processes",
        default="2,0",
        help="[server] ingest_processes of the collector, a series per value (0: none)",
    )
    parser.add_argument("--plaintext", action="store_true", help="NOT production-shaped")
    parser.add_argument("--reconnect-per-report", action="store_true")
    parser.add_argument(
        "--loadgen-processes", type=int, default=0, help="generator workers (default: 1 per 2,500)"
    )
    args = parser.parse_args()
    sizes = [int(x) for x in args.agents.split(",")]
    series = [int(x) for x in args.ingest_processes.split(",")]
    raise_open_files_limit()  # inherited by the collectors started below
    started, load0 = time.monotonic(), os.getloadavg()
    rows: list[dict[str, Any]] = []
    page = ""
    best: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="dcguard-scale-") as tmp:
        seed, certs = template(Path(tmp), max(sizes), args.plaintext)
        shape = Shape(
            certs=certs, reconnect=args.reconnect_per_report, processes=args.loadgen_processes
        )
        for processes in series:
            best[processes] = 0
            for n in sizes:
                workdir = Path(tmp) / f"run-{processes}-{n}"
                collector = _collector(workdir, args.plaintext, processes)
                if seed is not None:
                    shutil.copytree(seed, collector.data_dir)
                collector.start()
                try:
                    load = run_load(collector, n, args.duration, shape)
                    load["ingest_processes"] = processes
                    rows.append(load)
                    print(json.dumps(load), flush=True)
                    if n == args.detail_at and processes == series[0]:
                        figures, page = detail(collector, n)
                        print(json.dumps(figures), flush=True)
                finally:
                    collector.stop()
                    shutil.rmtree(workdir, ignore_errors=True)
                if not load["passed"]:
                    break
                best[processes] = n
        if page and args.push_budget > 0:
            print(json.dumps({"pushgateway": pushgateway(page, args.push_budget)}), flush=True)
    print(table(rows))
    for processes, n in best.items():
        print(f"max agents passed with {processes} ingest processes: {n:,}")
    load1 = os.getloadavg()
    print(
        f"run: {time.monotonic() - started:.0f} s wall; load average before "
        f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} "
        f"{load1[2]:.2f}; {os.cpu_count()} cores shared by the collector and the generator"
    )


if __name__ == "__main__":
    main()
