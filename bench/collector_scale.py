"""Collector at the centre: how many agents one collector carries, side by side with Pushgateway.

For each N in --agents (past --detail-at, stopping at the first that fails): a fresh
collector and the load generator (its own process) simulating N agents at
a 15 s interval for --duration seconds. N passes when nothing is lost
(every acknowledged report is stored, no failed call, no sequence gap) and
p99 Submit latency is under 100 ms. Each row also has the collector's CPU
per report and its RSS (its ingest processes included), and the
database's steady-state growth: bytes added per stored report between the
end of the first round (every host known) and the end of the run,
extrapolated to a day at N agents. The collector runs with
--ingest-processes (2 by default, one per core here; 0 for none).

At --detail-at hosts (10,000 by default) it measures, directly: /metrics
scrape time and size, the database's size by table, restart to serving
/metrics, RSS after the restart; then it pushes the same per-host series to
Pushgateway for --push-budget seconds and compares. Prints JSON lines, then
a Markdown table.

    flock /tmp/dcguard-bench.lock .venv/bin/python bench/collector_scale.py \
        --agents 2500,5000,7500,10000,12500,15000 --duration 45 --push-budget 150
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import tree_cpu_seconds, tree_rss_mib
from bench.pushgw import ok, pushgateway, timed_get
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


def start_loadgen(target: str, agents: int, duration: float, first_agent: int = 0) -> Any:
    """The load generator (bench/loadgen.py) in its own process, driving agents at target."""
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--target",
            target,
            "--agents",
            str(agents),
            "--duration",
            str(duration),
            "--interval",
            str(INTERVAL),
            "--first-agent",
            str(first_agent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def loadgen_result(proc: Any) -> dict[str, Any]:
    """What a load generator started by start_loadgen sent (its JSON line), once it ends."""
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"loadgen failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_load(collector: Collector, agents: int, duration: float) -> dict[str, Any]:
    """Drive N agents; sample the database after the first round and at the end."""
    assert collector.proc is not None
    pid = collector.proc.pid
    cpu0 = tree_cpu_seconds(pid)
    proc = start_loadgen(collector.grpc_address, agents, duration)
    started = time.monotonic()
    warm: tuple[int, int] | None = None
    while proc.poll() is None:
        time.sleep(0.5)
        if warm is None and time.monotonic() - started > INTERVAL + 2:
            warm = (database_bytes(collector.data_dir), stored_reports(collector.data_dir))
    load = loadgen_result(proc)
    cpu = tree_cpu_seconds(pid) - cpu0
    stored, lost = reported_counters(collector)
    end = (database_bytes(collector.data_dir), stored_reports(collector.data_dir))
    load.update(
        stored=stored,
        lost=lost,
        zero_loss=not load["failures"] and stored == load["stored_ok"] and lost == 0,
        collector_cpu_ms_per_report=round(cpu * 1000 / max(1, stored), 3),
        rss_mib=round(tree_rss_mib(pid), 1),
        db_bytes=end[0],
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
        "| agents | ingest processes | reports/s | stored | lost | failures | p50 ms | "
        "p99 ms | collector CPU ms/report | RSS MiB | DB bytes/report | DB growth GB/day "
        "| passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agents']:,} | {r['ingest_processes']} | {r['rate_per_s']} | "
            f"{r['stored']:,} | {r['lost']} | "
            f"{sum(r['failures'].values())} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['collector_cpu_ms_per_report']} | {r['rss_mib']} | "
            f"{r.get('db_bytes_per_report', '—')} | {r.get('db_growth_gb_per_day', '—')} | "
            f"{'yes' if r['passed'] else '**no**'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", default="2500,5000,10000,12500,15000")
    parser.add_argument("--duration", type=float, default=45)
    parser.add_argument("--detail-at", type=int, default=10_000)
    parser.add_argument("--push-budget", type=float, default=600)
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=2,
        help="[server] ingest_processes of the collector (0: none)",
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    page = ""
    for n in [int(x) for x in args.agents.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            collector = Collector(
                Path(tmp), server_extra="insecure = true\n", ingest_processes=args.ingest_processes
            )
            collector.start()
            try:
                load = run_load(collector, n, args.duration)
                load["ingest_processes"] = args.ingest_processes
                rows.append(load)
                print(json.dumps(load), flush=True)
                if n == args.detail_at:
                    figures, page = detail(collector, n)
                    print(json.dumps(figures), flush=True)
            finally:
                collector.stop()
        # The 10,000-host figures are always measured; past them, stop at the first miss.
        if not load["passed"] and n >= args.detail_at:
            break
    if page:
        print(json.dumps({"pushgateway": pushgateway(page, args.push_budget)}), flush=True)
    print(table(rows))
    passed = 0
    for r in rows:  # the largest N with every smaller N passing too
        if not r["passed"]:
            break
        passed = r["agents"]
    print(f"max agents passed: {passed:,}")


if __name__ == "__main__":
    main()
