"""Load generator: N simulated agents submitting realistic reports, production-shaped.

Production-shaped is the default and needs --ca and --certs: every simulated
agent holds ONE mTLS connection of its own for the whole run, presents its
own client certificate (issued by the collector's CA and recorded in its
registry: bench/agent_certs.py makes them), and sends each report gzip'd,
one Submit per interval, as agent/dcguard/agent/delivery/sender.py does.
The agents' phases are spread evenly over the interval.

The run has two parts, timed apart:
  1. connect: every agent opens its channel and completes its TLS handshake
     (what a collector restart with N agents reconnecting costs);
  2. rounds: duration / interval rounds of one report per agent.

Thousands of channels in one Python process make the generator itself a
bottleneck, so the agents are split over --processes worker processes
(agent i goes to worker i mod P: each worker's phases stay spread). The
generator's own CPU (all workers) is measured and printed: on a machine
shared with the collector it says how much of the CPU the load itself took.

Prints one JSON line: what was sent and stored, failures by status code,
Submit latency percentiles, connect time, the generator's CPU and RSS.

    python bench/loadgen.py --target 127.0.0.1:4740 --agents 10000 --duration 45 \\
        --ca CERTS/ca.crt --certs CERTS [--processes 4] [--interval 15]

Options (a stable CLI: other benchmarks drive it):
  --target H:P            the collector's agent port
  --agents N              simulated agents (hosts srv00000… as bench/realistic.py names them)
  --duration S            seconds of rounds after every agent is connected
  --interval S            each agent's report interval (15 as the agent's default)
  --ca FILE               the collector's CA certificate (trusted for the server)
  --certs DIR             <host>.key / <host>.crt per agent (bench/agent_certs.py)
  --processes P           worker processes (default: one per 2,500 agents)
  --reconnect-per-report  a new channel (TCP + TLS handshake) for every report, closed after it
  --first-sequence K      sequence number of each agent's first report (default 1)
  --first-agent A         simulate agents A..A+N-1 (default 0): generators driving
                          different collectors of one store get disjoint hosts
  --plaintext             NOT production-shaped: no TLS, no gzip, --connections shared
                          channels for all agents (the collector must run insecure)
  --connections C         with --plaintext only: how many shared channels (default 64)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_certs import cert_paths
from bench.procstat import rss_mib
from bench.realistic import Cycle, agent
from dcguard.collector.fdlimit import raise_open_files_limit
from dcguard.v1 import collector_pb2 as pb

SUBMIT = "/dcguard.v1.Collector/Submit"
# The agent's channel options (agent/dcguard/agent/delivery/sender.py), plus a
# subchannel pool per channel: otherwise gRPC shares one TCP connection among
# channels to the same target, where real agents each have their own.
AGENT_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.enable_retries", 0),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.use_local_subchannel_pool", 1),
]
AGENT_TIMEOUT = 10.0  # the agent's [collector] timeout default
AGENTS_PER_PROCESS = 2_500
CONNECT_TIMEOUT = 120.0
# Written to stderr once every agent is connected, so a driver can time the rounds apart.
CONNECTED = "connected: "
CONNECTING_AT_ONCE = 256  # handshakes a worker has in flight; thousands at once only queue


@dataclass(frozen=True)
class Plan:
    """What every worker is told: the same for all, except which agents are its own."""

    target: str
    agents: int
    rounds: int
    interval: float
    ca: Path | None
    certs: Path | None
    reconnect: bool
    first_sequence: int
    connections: int  # --plaintext only
    first_agent: int = 0

    @property
    def indices(self) -> range:
        """The agents this generator simulates (bench/realistic.agent numbering)."""
        return range(self.first_agent, self.first_agent + self.agents)

    @property
    def plaintext(self) -> bool:
        return self.ca is None


class _Agents:
    """One worker's agents: their channels and the Submit callable of each."""

    def __init__(self, plan: Plan, mine: list[int]) -> None:
        self.plan = plan
        self.mine = mine
        self.channels: dict[int, grpc.aio.Channel] = {}
        self._ca = plan.ca.read_bytes() if plan.ca else b""

    def credentials(self, i: int) -> grpc.ChannelCredentials:
        assert self.plan.certs is not None
        key, cert = cert_paths(self.plan.certs, agent(i).host)
        return grpc.ssl_channel_credentials(
            root_certificates=self._ca,
            private_key=key.read_bytes(),
            certificate_chain=cert.read_bytes(),
        )

    def open(self, i: int) -> grpc.aio.Channel:
        if self.plan.plaintext:
            return grpc.aio.insecure_channel(self.plan.target, options=AGENT_CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(
            self.plan.target, self.credentials(i), options=AGENT_CHANNEL_OPTIONS
        )

    def channel(self, i: int) -> grpc.aio.Channel:
        """The channel agent i sends on: its own, or (plaintext) one of the shared ones."""
        key = i % self.plan.connections if self.plan.plaintext else i
        if key not in self.channels:
            self.channels[key] = self.open(i)
        return self.channels[key]

    async def connect_all(self) -> dict[str, int]:
        """Open every held channel and wait for its handshake; failures by kind."""
        limit = asyncio.Semaphore(CONNECTING_AT_ONCE)
        failed: dict[str, int] = {}

        async def connect(i: int) -> None:
            async with limit:
                try:
                    await asyncio.wait_for(self.channel(i).channel_ready(), CONNECT_TIMEOUT)
                except asyncio.TimeoutError:
                    failed["CONNECT_TIMEOUT"] = failed.get("CONNECT_TIMEOUT", 0) + 1

        await asyncio.gather(*(connect(i) for i in self.mine))
        return failed

    async def close(self) -> None:
        for c in self.channels.values():
            await c.close()


async def _work(plan: Plan, mine: list[int], link: multiprocessing.connection.Connection) -> None:
    raise_open_files_limit()
    agents = _Agents(plan, mine)
    cycle = Cycle([agent(i, plan.interval) for i in range(plan.indices.stop)])
    connect_started = time.monotonic()
    failures: dict[str, int] = {}
    if not plan.reconnect:
        failures.update(await agents.connect_all())
    link.send({"connect_s": time.monotonic() - connect_started})
    start_wall: float = link.recv()  # the parent starts every worker's rounds at once
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    latencies: list[float] = []
    sent = 0
    request_bytes = gzip_bytes = 0
    compression = None if plan.plaintext else grpc.Compression.Gzip

    async def submit(i: int, sequence: int) -> None:
        nonlocal sent, request_bytes, gzip_bytes
        # Stamped when it is sent, as an agent stamps a report when it takes it.
        request = cycle.request(i, sequence, time.time())
        if not request_bytes:
            request_bytes, gzip_bytes = len(request), len(gzip.compress(request))
        channel = agents.open(i) if plan.reconnect else agents.channel(i)
        call = channel.unary_unary(SUBMIT, request_serializer=None, response_deserializer=None)
        t0 = time.perf_counter()
        try:
            reply = await call(request, timeout=AGENT_TIMEOUT, compression=compression)
        except grpc.aio.AioRpcError as exc:
            failures[exc.code().name] = failures.get(exc.code().name, 0) + 1
            return
        finally:
            if plan.reconnect:
                await channel.close()
        if pb.SubmitResponse.FromString(reply).acked_sequence != sequence:
            failures["WRONG_ACK"] = failures.get("WRONG_ACK", 0) + 1
            return
        latencies.append(time.perf_counter() - t0)
        sent += 1

    tasks = []
    offset = time.monotonic() - time.time()  # wall start → this process's monotonic clock
    for round_no in range(plan.rounds):
        for i in mine:
            phase = plan.interval * (i - plan.first_agent) / plan.agents
            due = start_wall + offset + round_no * plan.interval + phase
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(submit(i, plan.first_sequence + round_no)))
    await asyncio.gather(*tasks)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    rss = rss_mib(os.getpid())
    await agents.close()
    link.send(
        {
            "sent": sent,
            "failures": failures,
            "latencies": latencies,
            "request_bytes": request_bytes,
            "gzip_bytes": gzip_bytes,
            "cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
            "rss_mib": rss,
        }
    )


def _worker(plan: Plan, mine: list[int], link: multiprocessing.connection.Connection) -> None:
    asyncio.run(_work(plan, mine, link))


def run(plan: Plan, processes: int) -> dict[str, object]:
    """Start the workers, let them connect, start their rounds together, merge what they saw."""
    raise_open_files_limit()
    context = multiprocessing.get_context("spawn")  # no grpc state forked into the workers
    links = []
    workers = []
    for k in range(processes):
        parent, child = context.Pipe()
        proc = context.Process(target=_worker, args=(plan, list(plan.indices[k::processes]), child))
        proc.start()
        links.append(parent)
        workers.append(proc)
    try:
        connect_s = max(float(link.recv()["connect_s"]) for link in links)
        print(f"{CONNECTED}{plan.agents} agents in {connect_s:.1f} s", file=sys.stderr, flush=True)
        start_wall = time.time() + 0.5
        for link in links:
            link.send(start_wall)
        results = [link.recv() for link in links]
        elapsed = time.time() - start_wall
    finally:
        for proc in workers:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    failures: dict[str, int] = {}
    for r in results:
        for code, count in r["failures"].items():
            failures[code] = failures.get(code, 0) + count
    sent = sum(int(r["sent"]) for r in results)
    cpu = sum(float(r["cpu_s"]) for r in results)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return float(latencies[min(len(latencies) - 1, int(p * len(latencies)))]) * 1000

    return {
        "agents": plan.agents,
        "first_agent": plan.first_agent,
        "mode": "plaintext-shared" if plan.plaintext else "mtls-gzip-per-agent",
        "reconnect_per_report": plan.reconnect,
        "processes": processes,
        "rounds": plan.rounds,
        "connect_s": round(connect_s, 1),
        "stored_ok": sent,
        "failures": failures,
        "elapsed_s": round(elapsed, 1),
        "rate_per_s": round(sent / elapsed, 1),
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else 0,
        "request_bytes": results[0]["request_bytes"],
        "request_gzip_bytes": results[0]["gzip_bytes"],
        "loadgen_cpu_s": round(cpu, 1),
        "loadgen_cores": round(cpu / elapsed, 2),
        "loadgen_cpu_ms_per_report": round(cpu * 1000 / max(1, sent), 3),
        "loadgen_rss_mib": round(sum(float(r["rss_mib"]) for r in results), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="See the module docstring for the options' meaning.",
    )
    parser.add_argument("--target", required=True)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=45)
    parser.add_argument("--interval", type=float, default=15)
    parser.add_argument("--ca", type=Path)
    parser.add_argument("--certs", type=Path)
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--reconnect-per-report", action="store_true")
    parser.add_argument("--first-sequence", type=int, default=1)
    parser.add_argument("--first-agent", type=int, default=0)
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if args.plaintext == bool(args.ca and args.certs):
        parser.error("give --ca and --certs (production-shaped), or --plaintext")
    if (
        args.agents < 1
        or args.first_agent < 0
        or args.interval <= 0
        or args.duration < args.interval
    ):
        parser.error("--agents ≥ 1, --first-agent ≥ 0, --interval > 0 and --duration ≥ --interval")
    if not args.plaintext:
        last = agent(args.first_agent + args.agents - 1).host
        missing = [p for p in (args.ca, *cert_paths(args.certs, last)) if not p.is_file()]
        if missing:
            parser.error(f"{missing[0]} is missing: mint certificates with bench/agent_certs.py")
    processes = args.processes or -(-args.agents // AGENTS_PER_PROCESS)
    plan = Plan(
        target=args.target,
        agents=args.agents,
        rounds=max(1, int(args.duration / args.interval)),
        interval=args.interval,
        ca=None if args.plaintext else args.ca,
        certs=None if args.plaintext else args.certs,
        reconnect=args.reconnect_per_report,
        first_sequence=max(1, args.first_sequence),
        connections=max(1, args.connections),
        first_agent=args.first_agent,
    )
    print(json.dumps(run(plan, max(1, min(processes, args.agents)))), flush=True)


if __name__ == "__main__":
    main()
