"""Collector restart at scale, alone: a kept database, then start → /metrics, profiled.

collector_scale.py measures restart only at the end of a full load run; this
keeps the database of one such run so the restart can be repeated and
profiled in seconds.

    # once (a few minutes): N realistic agents for --duration seconds, kept in DIR
    flock /tmp/dcguard-bench.lock .venv/bin/python bench/collector_restart.py \
        --populate --agents 10000 --duration 45 DIR
    # then, as often as needed: the collector process from start to its first
    # /metrics answer, its RSS then and after a second scrape
    flock /tmp/dcguard-bench.lock .venv/bin/python bench/collector_restart.py DIR
    # the same startup in-process under cProfile (load and first render)
    .venv/bin/python bench/collector_restart.py --profile 30 DIR

The database is copied to a scratch directory for each run, so every run
starts from the same file (a run's own writes, a checkpoint, do not carry over).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import rss_mib
from bench.pushgw import ok
from tests.support import Collector, wait_for


def populate(keep: Path, agents: int, duration: float) -> None:
    from bench.collector_scale import Shape, run_load

    keep.mkdir(parents=True, exist_ok=True)
    collector = Collector(keep, server_extra="insecure = true\n")
    collector.start()
    try:
        # Only the database's content matters here: the plaintext load fills it fastest.
        load = run_load(collector, agents, duration, Shape(certs=None))
        print(json.dumps(load), flush=True)
    finally:
        collector.stop()


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=300) as response:
        return len(response.read())


def scratch_copy(keep: Path, tmp: Path) -> Collector:
    (tmp / "data").mkdir(parents=True)
    for db in (keep / "data").glob("collector.db*"):
        shutil.copy(db, tmp / "data" / db.name)
    return Collector(tmp, server_extra="insecure = true\n")


def restart(keep: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        collector = scratch_copy(keep, Path(tmp))
        started = time.monotonic()
        collector.start()  # returns once the collector logs that it listens
        listening = time.monotonic() - started
        wait_for(lambda: ok(collector.metrics_url), timeout=300, message="metrics")
        serving = time.monotonic() - started
        assert collector.proc is not None
        pid = collector.proc.pid
        rss_start = rss_mib(pid)
        scrape0 = time.monotonic()
        size = fetch(collector.metrics_url)
        scrape = time.monotonic() - scrape0
        rss_scrape = rss_mib(pid)
        collector.stop()
        return {
            "listening_s": round(listening, 2),
            "restart_s": round(serving, 2),
            "rss_after_start_mib": round(rss_start, 1),
            "rss_after_scrapes_mib": round(rss_scrape, 1),
            "scrape_s": round(scrape, 2),
            "bytes": size,
        }


def profile(keep: Path, top: int) -> None:
    from dcguard.collector.config import load_config
    from dcguard.collector.server import CollectorServer

    with tempfile.TemporaryDirectory() as tmp:
        collector = scratch_copy(keep, Path(tmp))
        config = load_config(collector.config_path)
        server = CollectorServer(config)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        server.start()
        loaded = time.perf_counter()
        page = server.render_metrics()
        profiler.disable()
        rendered = time.perf_counter()
        server.stop()
        print(
            f"start {loaded - started:.2f}s, first render {rendered - loaded:.2f}s "
            f"({len(page) / 2**20:.0f} MiB), under cProfile"
        )
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path, help="where the populated collector's files are kept")
    parser.add_argument("--populate", action="store_true")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=45)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", type=int, metavar="TOP", default=0)
    args = parser.parse_args()
    if args.populate:
        populate(args.dir, args.agents, args.duration)
    elif args.profile:
        profile(args.dir, args.profile)
    else:
        for _ in range(args.runs):
            print(json.dumps(restart(args.dir)), flush=True)


if __name__ == "__main__":
    main()
