"""Many collectors on PostgreSQL: one collector, then two on the same database, against SQLite.

Production-shaped as bench/collector_scale.py (issue 15): the collectors
serve mTLS and share one CA (one [tls] dir, as the collectors of one site
do); every simulated agent has its own client certificate, recorded in the
store's registry (bench/agent_certs.py: in PostgreSQL for the PostgreSQL
rows), its own long-lived connection, and sends gzip'd reports.

For each N in --agents and each topology in --collectors (1, 2: collectors
sharing one PostgreSQL database, each with its own load generator driving a
disjoint share of the N hosts (loadgen --first-agent), as a site's agents
split over its collectors), plus one SQLite collector for comparison
(collector_scale's run_load, the same Shape): a fresh database, N agents at
a 15 s interval for --duration seconds of rounds after every agent is
connected. A row passes when nothing is lost (every acknowledged report is
stored once in the database, no failed call, no sequence gap) and p99
Submit latency is under 100 ms for every collector. Each row has the CPU
per stored report of each collector process tree and of PostgreSQL's
(postmaster and backends), both counted from "every agent connected" on,
and the load average (the machine may be shared: say so with the figures).

From the measured CPU per report it prints what N collectors on M cores
would carry, labelled DERIVED: M cores' seconds divided by the CPU one
report costs (collector + PostgreSQL), times the 15 s interval. That
assumes CPU is the bound (no lock waits, disk fsync or network added); the
measured rows are the ground truth for this machine.

The cluster is private (tests/postgres.py: initdb, 127.0.0.1, a random
port) with fsync on, so a commit is as durable as SQLite's synchronous=FULL.

    flock /tmp/dcguard-bench.lock .venv/bin/python bench/collector_ha_postgres.py \\
        --agents 1000,2000,3000 --collectors 1,2 --duration 30

(about 7 minutes: 9 rows of 35-45 s, plus minting 3,000 certificates.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_certs import mint
from bench.collector_scale import Generator, Shape, run_load
from bench.procstat import tree_cpu_seconds
from dcguard.collector.fdlimit import raise_open_files_limit
from dcguard.collector.store import PostgresDatabase
from tests.postgres import Cluster, server_bin
from tests.support import Collector

# What a core would carry if CPU were the only bound (the DERIVED table).
CORES = (2, 4, 8, 16)
INTERVAL = 15.0


class DurableCluster(Cluster):
    """The tests' private cluster, with fsync on (a benchmark's commits must be real)."""

    fsync = "on"


def postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def store_table(cluster: Cluster, workdir: Path) -> tuple[PostgresDatabase, str]:
    """A fresh database of the cluster, and the [store] of a collector on it."""
    database = cluster.database()
    password = workdir / "pg-password"
    password.parent.mkdir(parents=True, exist_ok=True)
    password.write_text(cluster.password_file.read_text())
    password.chmod(0o600)
    return database, (
        f'[store]\nengine = "postgresql"\ndsn = "{database.dsn}"\npassword_file = "{password}"\n'
    )


def tls_collector(workdir: Path, ca_dir: Path, store: str, ingest_processes: int) -> Collector:
    """An mTLS collector whose CA is the shared one in ca_dir (the tests' PeerTlsCollector)."""
    return Collector(
        workdir,
        server_extra="insecure = false\n",
        ingest_processes=ingest_processes,
        extra_config=f'[tls]\nenroll_listen = "127.0.0.1:0"\ndir = "{ca_dir}"\n{store}',
    )


def make_ca(base: Path) -> Path:
    """One CA for the whole run, made by the collector's own `ca init`; its [tls] dir."""
    ca_dir = base / "ca"
    maker = tls_collector(base / "ca-maker", ca_dir, "", 0)
    init = maker.cli("ca", "init", "--name", "localhost", "--address", "127.0.0.1")
    if init.returncode:
        raise RuntimeError(f"ca init failed: {init.stderr}")
    return ca_dir


def stored_in(cluster: Cluster, database: PostgresDatabase) -> tuple[int, int]:
    """(reports stored, reports lost) summed over the database's agents: every collector's."""
    rows = cluster.query(
        database,
        "SELECT COALESCE(SUM(reports_stored), 0), COALESCE(SUM(reports_lost), 0) FROM agents",
    )
    return int(str(rows[0][0])), int(str(rows[0][1]))


def run_postgres(
    cluster: Cluster,
    workdir: Path,
    ca_dir: Path,
    agents: int,
    collectors: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """N agents split over `collectors` collectors sharing one fresh database."""
    database, store = store_table(cluster, workdir)
    running = [
        tls_collector(workdir / f"collector{i}", ca_dir, store, args.ingest_processes)
        for i in range(collectors)
    ]
    # The agents' certificates recorded in this database's registry (cached files reused).
    minted = mint(running[0].config_path, agents, args.certs)
    share = agents // collectors
    shape = Shape(certs=args.certs)
    generators: list[Generator] = []
    wall0, load0 = time.monotonic(), os.getloadavg()[0]
    pg = postmaster_pid(cluster)
    pg_connected: list[float] = []  # PostgreSQL's CPU when every generator was connected
    try:
        for collector in running:
            collector.start()
        generators = [
            Generator(c, share, args.duration, shape, first_agent=i * share)
            for i, c in enumerate(running)
        ]
        while any(g.running() for g in generators):
            time.sleep(0.2)
            if not pg_connected and all(g.connected for g in generators):
                pg_connected.append(tree_cpu_seconds(pg))
        finished = [g.finish() for g in generators]
        pg_cpu = tree_cpu_seconds(pg) - (pg_connected[0] if pg_connected else 0.0)
    finally:
        for g in generators:
            g.stop()
        for collector in running:
            collector.stop()
    stored, lost = stored_in(cluster, database)
    results = [load for load, _ in finished]
    acked = sum(int(r["stored_ok"]) for r in results)
    failures = sum(sum(r["failures"].values()) for r in results)
    row: dict[str, Any] = {
        "engine": "postgresql",
        "collectors": collectors,
        "agents": share * collectors,
        "mode": results[0]["mode"],
        "rate_per_s": round(sum(float(r["rate_per_s"]) for r in results), 1),
        "stored": stored,
        "acked": acked,
        "lost": lost,
        "failures": failures,
        "p99_ms": [r["p99_ms"] for r in results],
        "collector_cpu_ms_per_report": [
            round(cpu * 1000 / max(1, int(r["stored_ok"])), 3) for r, cpu in finished
        ],
        "postgres_cpu_ms_per_report": round(pg_cpu * 1000 / max(1, stored), 3),
        "loadgen_cores": round(sum(float(r["loadgen_cores"]) for r in results), 2),
        "certs_recorded_s": minted["seconds"],
        "load1_start": round(load0, 2),
        "load1_end": round(os.getloadavg()[0], 2),
        "row_s": round(time.monotonic() - wall0, 1),
    }
    row["zero_loss"] = failures == 0 and stored == acked and lost == 0
    row["passed"] = row["zero_loss"] and all(float(p) < 100 for p in row["p99_ms"])
    return row


def run_sqlite(
    workdir: Path, ca_dir: Path, agents: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The same load on one SQLite collector (collector_scale's measurement, the same Shape)."""
    collector = tls_collector(workdir / "sqlite", ca_dir, "", args.ingest_processes)
    minted = mint(collector.config_path, agents, args.certs)
    collector.start()
    try:
        load = run_load(collector, agents, args.duration, Shape(certs=args.certs))
    finally:
        collector.stop()
    return {
        "engine": "sqlite",
        "collectors": 1,
        "agents": agents,
        "mode": load["mode"],
        "rate_per_s": load["rate_per_s"],
        "stored": load["stored"],
        "acked": load["stored_ok"],
        "lost": load["lost"],
        "failures": sum(load["failures"].values()),
        "p99_ms": [load["p99_ms"]],
        "collector_cpu_ms_per_report": [load["collector_cpu_ms_per_report"]],
        "postgres_cpu_ms_per_report": 0.0,
        "loadgen_cores": load["loadgen_cores"],
        "certs_recorded_s": minted["seconds"],
        "load1_start": load["load1_start"],
        "load1_end": load["load1_end"],
        "row_s": load["row_s"],
        "zero_loss": load["zero_loss"],
        "passed": load["passed"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| engine | collectors | agents | reports/s | stored | lost | failures | p99 ms (each) "
        "| collector CPU ms/report (each) | PostgreSQL CPU ms/report | generator cores "
        "| load avg 1 min (start → end) | passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['collectors']} | {r['agents']:,} | {r['rate_per_s']} | "
            f"{r['stored']:,} | {r['lost']} | {r['failures']} | "
            f"{' / '.join(str(p) for p in r['p99_ms'])} | "
            f"{' / '.join(str(c) for c in r['collector_cpu_ms_per_report'])} | "
            f"{r['postgres_cpu_ms_per_report']} | {r['loadgen_cores']} | "
            f"{r['load1_start']} → {r['load1_end']} | {'yes' if r['passed'] else '**no**'} |"
        )
    return "\n".join(lines)


def max_passed(rows: list[dict[str, Any]]) -> int:
    """The largest N with every smaller N of the same setup passing too."""
    passed = 0
    for r in sorted(rows, key=lambda r: r["agents"]):
        if not r["passed"]:
            break
        passed = r["agents"]
    return passed


def derived(rows: list[dict[str, Any]]) -> str:
    """DERIVED, not measured: agents M cores carry at the measured CPU per report."""
    lines = [
        "DERIVED (not measured): agents at a 15 s interval that M cores carry if CPU is the "
        "only bound, from the largest passing row of each setup (the largest row if none passed)",
        "| setup | CPU ms/report (collectors + PostgreSQL) | "
        + " | ".join(f"{m} cores" for m in CORES)
        + " |",
        "|---|---|" + "---|" * len(CORES),
    ]
    for setup in sorted({(r["engine"], r["collectors"]) for r in rows}):
        same = [r for r in rows if (r["engine"], r["collectors"]) == setup]
        passing = [r for r in same if r["passed"]]
        # No row passed: the largest one still says what a report costs (marked).
        best = max(passing or same, key=lambda r: r["agents"])
        per_collector = best["collector_cpu_ms_per_report"]
        ms = sum(per_collector) / len(per_collector) + best["postgres_cpu_ms_per_report"]
        carried = [f"{int(m * 1000 / ms * INTERVAL):,}" for m in CORES]
        mark = "" if passing else " (no row passed)"
        lines.append(
            f"| {setup[0]}, {setup[1]} collector(s){mark} | {ms:.3f} | "
            + " | ".join(carried)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1000,2000,3000")
    parser.add_argument("--collectors", default="1,2", help="collectors on one database, each N")
    parser.add_argument(
        "--duration", type=float, default=45, help="seconds of rounds after every agent connected"
    )
    parser.add_argument("--ingest-processes", type=int, default=0)
    parser.add_argument("--no-sqlite", action="store_true", help="leave out the SQLite rows")
    args = parser.parse_args()
    try:
        sizes = [int(x) for x in args.agents.split(",")]
        counts = [int(x) for x in args.collectors.split(",")]
    except ValueError:
        parser.error("--agents and --collectors are comma-separated whole numbers")
    if min(sizes) < 1 or min(counts) < 1 or args.duration < INTERVAL:
        parser.error(f"agents and collectors ≥ 1, --duration ≥ {INTERVAL:g}")
    bindir = server_bin()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found (apt-get install postgresql)")
    raise_open_files_limit()  # inherited by the collectors started below
    started, load0 = time.monotonic(), os.getloadavg()
    rows: list[dict[str, Any]] = []
    cluster = DurableCluster(bindir)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="dcguard-ha-") as base:
            ca_dir = make_ca(Path(base))
            args.certs = Path(base) / "certs"  # minted once for the largest N, reused
            for n in sizes:
                run_dir = Path(base) / f"n{n}"
                if not args.no_sqlite:
                    rows.append(run_sqlite(run_dir, ca_dir, n, args))
                    print(json.dumps(rows[-1]), flush=True)
                for k in counts:
                    rows.append(run_postgres(cluster, run_dir / f"pg{k}", ca_dir, n, k, args))
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        cluster.stop()
    print(table(rows))
    for setup in sorted({(r["engine"], r["collectors"]) for r in rows}):
        same = [r for r in rows if (r["engine"], r["collectors"]) == setup]
        print(f"max agents passed, {setup[0]}, {setup[1]} collector(s): {max_passed(same):,}")
    print(derived(rows))
    load1 = os.getloadavg()
    print(
        f"run: {time.monotonic() - started:.0f} s wall; load average before "
        f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} "
        f"{load1[2]:.2f}; {os.cpu_count()} cores shared by collectors, PostgreSQL and generators"
    )


if __name__ == "__main__":
    main()
