"""Load generator: N simulated agents submitting realistic reports over gRPC (asyncio).

Runs in its own process. Each agent submits one report per interval, the
agents' phases spread evenly over the interval. Prints one JSON line with
what was sent, how many calls failed, and Submit latency percentiles.

    python bench/loadgen.py --target 127.0.0.1:4740 --agents 10000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.realistic import Cycle, agent
from dcguard.v1 import collector_pb2 as pb


async def run(
    target: str,
    agents: int,
    duration: float,
    interval: float,
    concurrency: int,
    connections: int,
    first_agent: int = 0,
) -> dict[str, object]:
    # Each agent has a connection of its own; a local subchannel pool per
    # channel makes these separate TCP connections too (gRPC would otherwise
    # share one), so a collector with several ingest processes sees them
    # spread over its processes as real agents' connections would be.
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(connections)
    ]
    # Raw bytes both ways: the generator serializes each request itself
    # (Cycle re-stamps one template) and only reads the acknowledged sequence.
    calls = [
        c.unary_unary(
            "/dcguard.v1.Collector/Submit", request_serializer=None, response_deserializer=None
        )
        for c in channels
    ]
    cycle = Cycle([agent(first_agent + i, interval) for i in range(agents)])
    report_bytes = 0
    latencies: list[float] = []
    failures: dict[str, int] = {}
    sent = 0
    limit = asyncio.Semaphore(concurrency)
    start = time.monotonic()
    cpu = time.process_time()
    rounds = max(1, int(duration / interval))

    async def submit(i: int, sequence: int) -> None:
        nonlocal sent, report_bytes
        async with limit:
            # Stamped when it can be sent, as an agent stamps a report when it takes it.
            request = cycle.request(i, sequence, time.time())
            report_bytes = len(request)
            t0 = time.perf_counter()
            try:
                reply = await calls[i % len(calls)](request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                failures[exc.code().name] = failures.get(exc.code().name, 0) + 1
                return
            if pb.SubmitResponse.FromString(reply).acked_sequence != sequence:
                failures["WRONG_ACK"] = failures.get("WRONG_ACK", 0) + 1
                return
            latencies.append(time.perf_counter() - t0)
            sent += 1

    tasks = []
    for round_no in range(rounds):
        for i in range(agents):
            due = start + round_no * interval + interval * i / agents
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(submit(i, round_no + 1)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    for c in channels:
        await c.close()
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "agents": agents,
        "rounds": rounds,
        "stored_ok": sent,
        "failures": failures,
        "elapsed_s": round(elapsed, 1),
        "rate_per_s": round(sent / elapsed, 1),
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else 0,
        "request_bytes": report_bytes,
        "loadgen_cpu_ms_per_report": round((time.process_time() - cpu) * 1000 / max(1, sent), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--interval", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--connections", type=int, default=64)
    # Generators beside each other (one per collector) simulate different hosts.
    parser.add_argument("--first-agent", type=int, default=0, help="index of the first host")
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(
                run(
                    args.target,
                    args.agents,
                    args.duration,
                    args.interval,
                    args.concurrency,
                    args.connections,
                    args.first_agent,
                )
            )
        )
    )


if __name__ == "__main__":
    main()
