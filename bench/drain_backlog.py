"""Measure how fast a spooled backlog drains: a 7-day outage at 15 s by default.

Fills a real agent's spool through the real code path (build_report +
Spool.append), then starts a real collector and `dcguard-agent run` on
127.0.0.1 and times until the collector has stored every spooled report.
Usage: python bench/drain_backlog.py [REPORTS]   (default 40320 = 7 d at 15 s)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import Agent, Collector, metric, wait_for
from tests.test_delivery import HOST, prefill


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40320
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        collector = Collector(work / "collector")
        collector.start()
        collector.stop()
        agent = Agent(work / "agent", [collector.grpc_address], interval="15s")
        started = time.monotonic()
        prefill(agent, count)
        fill_s = time.monotonic() - started
        spool_bytes = sum(p.stat().st_size for p in (agent.state_dir / "spool").glob("*.seg"))
        collector.start()
        agent.start()
        started = time.monotonic()
        try:
            wait_for(
                lambda: (
                    (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0)
                    >= count
                ),
                timeout=1800,
                interval=0.5,
                message="the backlog to drain",
            )
            drain_s = time.monotonic() - started
        finally:
            agent.stop()
            collector.stop()
        print(
            f"spooled {count} reports ({spool_bytes} bytes on disk, "
            f"{spool_bytes / count:.0f} B/report) in {fill_s:.1f}s "
            f"({fill_s / count * 1000:.2f} ms per append)"
        )
        print(
            f"drained in {drain_s:.1f}s: {count / drain_s:.0f} reports/s "
            f"(agent start and collector connect included)"
        )


if __name__ == "__main__":
    main()
