"""Collector security throughput: detection under a login flood, and ingest + syslog forwarding.

    .venv/bin/python bench/bench_security_collector.py

1. 30,000 failed logins from one source (50/s for 10 min over three hosts,
   500 per report) through the real Store and detection rules.
2. 20,000 events in reports of 1,000 over real gRPC to a collector process
   forwarding to an RFC 5424 TCP listener: time to store, time until all
   arrived.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.security_helpers import FakeAgent, SyslogListener, event, failures
from tests.support import Collector, wait_for
from tests.test_detections import Site


def flood() -> None:
    site = Site(Path(tempfile.mkdtemp()) / "collector.db")
    t0 = time.time() - 7200
    start = time.perf_counter()
    for batch in range(60):
        host = ("web01", "web02", "db01")[batch % 3]
        site.send(host, failures("203.0.113.5", t0 + batch * 10, 500, step=0.02))
    elapsed = time.perf_counter() - start
    kinds = {k: len(site.detections(k)) for k in ("brute_force", "distributed_attack")}
    print(
        f"flood: 30000 failures stored and judged in {elapsed:.2f}s "
        f"({30000 / elapsed:.0f}/s); detections {kinds}"
    )
    site.store.close()


def forwarding() -> None:
    listener = SyslogListener("tcp").start()
    collector = Collector(
        Path(tempfile.mkdtemp()) / "c",
        extra_config=(f'[forward.syslog]\naddress = "127.0.0.1:{listener.port}"\n'),
    )
    collector.start()
    agent = FakeAgent(collector.grpc_address)
    try:
        now = time.time() - 600
        start = time.perf_counter()
        for i in range(20):
            agent.send(
                [
                    event(
                        "sudo_command",
                        now + i,
                        user="alice",
                        raw="sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
                        f"COMMAND=/usr/bin/apt update {j}",
                    )
                    for j in range(1000)
                ]
            )
        stored = time.perf_counter() - start
        wait_for(lambda: len(listener.received()) == 20000, timeout=300)
        done = time.perf_counter() - start
        print(
            f"forwarding: 20000 events stored over gRPC in {stored:.2f}s "
            f"({20000 / stored:.0f}/s); all at the listener after {done:.2f}s"
        )
    finally:
        agent.close()
        collector.stop()
        listener.stop()


if __name__ == "__main__":
    flood()
    forwarding()
