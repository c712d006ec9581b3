"""Throughput of the security sources: auth_log lines/s and FIM scan time (results in docs).

Run: .venv/bin/python bench/bench_security_sources.py
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcguard.agent.sources.security.fimscan import RateLimiter, scan
from tests.security_support import collect, make_source

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "auth"


def bench_auth_log(lines: int = 200_000) -> None:
    sample = [
        line
        for name in sorted(CORPUS.glob("*.log"))
        for line in name.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "auth.log"
        with log.open("w") as handle:
            for i in range(lines):
                handle.write(sample[i % len(sample)] + "\n")
        source = make_source(
            "auth_log",
            Path(tmp) / "state",
            {"max_events_per_report": 100_000, "max_pending_events": 100_000},
            path=str(log),
            start_at="beginning",
            max_lines_per_collect=1_000_000,
        )
        started = time.perf_counter()
        events = 0
        while True:
            report = collect(source)
            events += len(report.events)
            if report.security_stats.lines_read >= lines and not report.events:
                break
        elapsed = time.perf_counter() - started
        source.close()
    print(
        f"auth_log: {lines} lines, {events} events in {elapsed:.2f}s "
        f"= {lines / elapsed:,.0f} lines/s"
    )


def bench_fim(root: str = "/etc") -> None:
    stop = threading.Event()
    limiter = RateLimiter(1 << 40, stop)
    started = time.perf_counter()
    first, _ = scan([root], {}, limiter, stop, 100_000, 64 << 20)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    scan([root], first, limiter, stop, 100_000, 64 << 20)
    warm = time.perf_counter() - started
    size = sum(e["size"] for e in first.values() if e["type"] == "file")
    print(
        f"fim: {root}: {len(first)} entries, {size / 2**20:.1f} MiB; cold scan (hash all) "
        f"{cold:.2f}s, warm scan (stat only) {warm:.3f}s"
    )


if __name__ == "__main__":
    bench_auth_log()
    bench_fim()
