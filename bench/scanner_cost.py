"""CPU per run of each agent source that works on its own schedule, and per hour at its default.

fim and ports scan in their own threads (every 5 min and 30 s by default),
smart reads the disks every 10 min. The footprint bench runs cycles faster
than real time but these keep their real intervals, so their cost has to be
measured per run and scaled by runs per hour. Each scanner is started as the
agent starts it (first collect()), its first scan (the silent baseline,
once per agent start) is left out, and the next --runs scans are measured
with that thread's own CPU clock; smart's rounds run in this thread, and the
smartctl processes they start are counted too. Run in a process of its own,
so the child CPU is only smartctl's. Prints JSON.

By default scans run back to back (--gap 50ms): warm, each finding the
previous one's pages, /proc entries and Python objects in the caches. In
the agent they are 30 s or 5 min apart, and a cold scan costs more (issue
15 saw the ports scan at ~3.5 ms in real time against ~0.45 ms warm):
--gap 30s measures that, at the price of a run as long as runs x gap.

    .venv/bin/python bench/scanner_cost.py --config agent.toml [--runs 20] [--gap 50ms]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcguard.agent.config import load_config
from dcguard.agent.sources import SourceContext
from dcguard.agent.sources.security.baseline import BaselineScanSource
from dcguard.agent.sources.smart import SmartReader
from dcguard.agent.sources.storage.config import parse_storage
from dcguard.common.config import Table, load_toml
from dcguard.common.durations import parse_duration
from dcguard.v1 import collector_pb2 as pb


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait_scans(source: BaselineScanSource[object], count: int) -> None:
    deadline = time.monotonic() + 600 + source.interval * count
    while source.scans < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{source.name}: fewer than {count} scans in 600 s")
        time.sleep(0.01)


def scan_cost(source: BaselineScanSource[object], runs: int) -> float:
    """CPU seconds per scan after the baseline, on the scanner thread's own clock."""
    source.collect(pb.Report())  # loads the baseline and starts the scanner, as in the agent
    _wait_scans(source, 1)
    thread = next(t for t in threading.enumerate() if t.name == f"{source.name}-scanner")
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    first, cpu0 = source.scans, time.clock_gettime(clock)
    _wait_scans(source, first + runs)
    cpu = time.clock_gettime(clock) - cpu0
    done = source.scans - first  # it may have finished one more meanwhile: a slight overcount
    source.close()
    return cpu / done


def smart_cost(reader: SmartReader, runs: int) -> float:
    """CPU seconds per smart round, smartctl included."""
    reader.read_all()  # loads the cache file, as the first round does
    cpu0, children0 = time.thread_time(), _children_cpu()
    for _ in range(runs):
        reader.read_all()
    return (time.thread_time() - cpu0 + _children_cpu() - children0) / runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="an agent config without [security.fim] or [security.ports] "
        "tables: the default intervals are what is measured",
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--gap",
        default="50ms",
        help="pause between scans: 50ms (default) measures warm scans, "
        "the default interval (30s for ports) cold ones as the agent runs them",
    )
    parser.add_argument(
        "--only", action="append", help="measure only this scanner (fim, ports, smart); repeatable"
    )
    args = parser.parse_args()
    try:
        gap = parse_duration(args.gap)
    except ValueError as exc:
        parser.error(f"--gap: {exc}")
    config = load_config(args.config)
    intervals = {s.name: s.interval for s in config.sources if isinstance(s, BaselineScanSource)}
    # The same sources scanning back to back: the work per scan is the same.
    fast = args.config.with_name(f"{args.config.stem}-fast-scans.toml")
    fast.write_text(
        args.config.read_text()
        + "".join(f'[security.{name}]\ninterval = "{args.gap}"\n' for name in intervals)
    )
    result: dict[str, dict[str, float]] = {}
    for source in load_config(fast).sources:
        if isinstance(source, BaselineScanSource) and (not args.only or source.name in args.only):
            per_run = scan_cost(source, args.runs)
            result[source.name] = {
                "interval_s": intervals[source.name],
                "gap_s": gap,
                "cpu_ms_per_run": per_run * 1000,
            }
    if any(source.name == "smart" for source in config.sources) and (
        not args.only or "smart" in args.only
    ):
        storage = parse_storage(
            Table(load_toml(args.config), source="config"),
            SourceContext("bench", 15.0, Path("/tmp")),
        )
        with_cache = config.state_dir / "bench-smart-last.json"
        per_run = smart_cost(SmartReader(storage, with_cache), max(1, args.runs // 4))
        result["smart"] = {"interval_s": storage.smart_interval, "cpu_ms_per_run": per_run * 1000}
    for entry in result.values():
        entry["runs_per_hour"] = 3600 / entry["interval_s"]
        entry["cpu_s_per_hour"] = entry["cpu_ms_per_run"] / 1000 * entry["runs_per_hour"]
        entry["cpu_ms_per_run"] = round(entry["cpu_ms_per_run"], 3)
        entry["cpu_s_per_hour"] = round(entry["cpu_s_per_hour"], 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
