"""CPU per report on the collector's Submit path, in-process, with realistic reports.

Builds a real CollectorServer (insecure, fresh data dir, real SQLite with
synchronous=FULL), warms N hosts up, then submits --rounds more rounds of
distinct, changing reports (free bytes and timestamps move each cycle)
straight into SubmitFront.admit and CollectorService.settle from --threads threads (so the store's
group commit works as under load), and reports process CPU per report;
with --profile, one thread under cProfile.
gRPC's own transport cost is not in this figure (see collector_scale.py for
the whole process under load); everything after the request bytes arrive is.
CPU time, not wall time, so it is robust on a shared machine.

    .venv/bin/python bench/profile_submit.py --hosts 2000 --rounds 2 [--profile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.realistic import Cycle, agent
from dcguard.collector.config import load_config
from dcguard.collector.receive.admit import SubmitFront
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.server import CollectorServer
from dcguard.collector.settle.submit import CollectorService


class _Context:
    """The little of grpc.ServicerContext that admitting a Submit touches (insecure)."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


def requests(cycle: Cycle, hosts: int, round_no: int, now: float) -> list[bytes]:
    """One serialized request per host for this round, each host's own numbers."""
    return [cycle.request(i, round_no, now + i * 15 / hosts) for i in range(hosts)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="print the top N functions by cumulative time (one thread)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=16,
        help="submitting threads, as the server's pool (group commit)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "collector.toml"
        path.write_text(
            '[server]\ngrpc_listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n'
            f'data_dir = "{tmp}/data"\ninsecure = true\n'
        )
        server = CollectorServer(load_config(path))
        server.start()
        try:
            front = SubmitFront(Authenticator(insecure=True), server.config.limits)
            back = CollectorService(
                server.store, server.state, server.metrics, server.config.limits
            )

            def submit(data: bytes) -> None:
                reply = back.settle([front.admit(data, context)])[0]
                if reply.code is not None:
                    raise RuntimeError(f"{reply.code}: {reply.message}")

            context: Any = _Context()
            now = time.time()
            cycle = Cycle([agent(i) for i in range(args.hosts)])
            for data in requests(cycle, args.hosts, 1, now):  # warm-up: every host known
                submit(data)
            batches = [
                requests(cycle, args.hosts, r, now + 15 * (r - 1))
                for r in range(2, args.rounds + 2)
            ]
            # CPU time, not wall: an fsync waited for is not work done.
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            cpu = time.process_time()
            if profiler:
                profiler.enable()
            every = [data for batch in batches for data in batch]
            if profiler:  # cProfile sees only its own thread
                for data in every:
                    submit(data)
            else:
                with ThreadPoolExecutor(args.threads) as pool:
                    list(pool.map(submit, every))
            if profiler:
                profiler.disable()
            cpu = time.process_time() - cpu
            count = args.hosts * args.rounds
            print(
                f"{count} reports from {args.hosts} hosts: "
                f"{cpu / count * 1000:.3f} ms CPU per report"
            )
            if profiler:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
            started = time.process_time()
            text = server.render_metrics()
            print(
                f"scrape render: {time.process_time() - started:.3f} s CPU, "
                f"{len(text) / 2**20:.1f} MiB"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
