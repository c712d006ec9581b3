"""What one agent connection costs the collector: memory, a descriptor, handshake CPU.

A fresh collector (no ingest processes, so one process holds every
connection) and N agent channels opened from this process, each with its
own client certificate (bench/agent_certs.py) and its own TCP connection.
Measured on the collector's process tree: RSS and open descriptors before,
with N idle connections, after one gzip'd Submit on each (the host's state
is then held too), the collector's CPU for the N handshakes, and its CPU
per second with nothing sent, before the agents connect and with their N
connections held (what an agent costs between its reports). --plaintext
measures the same without TLS, to show what TLS itself adds.

    .venv/bin/python bench/connection_cost.py --agents 2000 [--plaintext]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_certs import cert_paths, mint
from bench.loadgen import AGENT_CHANNEL_OPTIONS, CONNECTING_AT_ONCE, SUBMIT
from bench.procstat import tree_cpu_seconds, tree_fds, tree_rss_mib
from bench.realistic import Cycle, agent
from dcguard.collector.fdlimit import raise_open_files_limit
from tests.support import Collector

SETTLE = 3.0  # seconds for the collector's memory to settle after each step
IDLE = 10.0  # seconds the collector's CPU is counted with nothing sent


async def _idle_cpu_ms_per_s(pid: int) -> float:
    """The collector tree's CPU while no call arrives: what held connections cost per second."""
    cpu0, started = tree_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(IDLE)
    return (tree_cpu_seconds(pid) - cpu0) * 1000 / (time.monotonic() - started)


def _channels(collector: Collector, certs: Path | None, n: int) -> list[grpc.aio.Channel]:
    if certs is None:
        return [
            grpc.aio.insecure_channel(collector.grpc_address, options=AGENT_CHANNEL_OPTIONS)
            for _ in range(n)
        ]
    ca = (certs / "ca.crt").read_bytes()
    out = []
    for i in range(n):
        key, cert = cert_paths(certs, agent(i).host)
        credentials = grpc.ssl_channel_credentials(ca, key.read_bytes(), cert.read_bytes())
        out.append(
            grpc.aio.secure_channel(
                collector.grpc_address, credentials, options=AGENT_CHANNEL_OPTIONS
            )
        )
    return out


async def _measure(collector: Collector, certs: Path | None, n: int) -> dict[str, Any]:
    assert collector.proc is not None
    pid = collector.proc.pid
    out: dict[str, Any] = {"rss0_mib": tree_rss_mib(pid), "fds0": tree_fds(pid)}
    out["idle_cpu_ms_per_s_no_agent"] = await _idle_cpu_ms_per_s(pid)
    channels = _channels(collector, certs, n)
    limit = asyncio.Semaphore(CONNECTING_AT_ONCE)
    cpu0, started = tree_cpu_seconds(pid), time.monotonic()

    async def ready(channel: grpc.aio.Channel) -> None:
        async with limit:
            await asyncio.wait_for(channel.channel_ready(), 120)

    await asyncio.gather(*(ready(c) for c in channels))
    out["connect_s"] = time.monotonic() - started
    out["collector_cpu_ms_per_handshake"] = (tree_cpu_seconds(pid) - cpu0) * 1000 / n
    await asyncio.sleep(SETTLE)
    out["rss_idle_mib"], out["fds_idle"] = tree_rss_mib(pid), tree_fds(pid)
    cycle = Cycle([agent(i) for i in range(n)])

    async def submit(i: int) -> None:
        async with limit:
            call = channels[i].unary_unary(
                SUBMIT, request_serializer=None, response_deserializer=None
            )
            await call(
                cycle.request(i, 1, time.time()), timeout=60, compression=grpc.Compression.Gzip
            )

    await asyncio.gather(*(submit(i) for i in range(n)))
    await asyncio.sleep(SETTLE)
    out["rss_after_submit_mib"] = tree_rss_mib(pid)
    # Agents report every 15 s: between reports their connections stay open.
    out["idle_cpu_ms_per_s_connections_held"] = await _idle_cpu_ms_per_s(pid)
    for c in channels:
        await c.close()
    per = 1024 / n
    out["kib_per_idle_connection"] = (out["rss_idle_mib"] - out["rss0_mib"]) * per
    out["kib_per_agent_after_one_report"] = (out["rss_after_submit_mib"] - out["rss0_mib"]) * per
    out["fds_per_agent"] = (out["fds_idle"] - out["fds0"]) / n
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--plaintext", action="store_true")
    args = parser.parse_args()
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="dcguard-conn-") as tmp:
        base = Path(tmp)
        if args.plaintext:
            collector = Collector(base / "c")
            certs = None
        else:
            collector = Collector(
                base / "c",
                server_extra="insecure = false\n",
                extra_config='[tls]\nenroll_listen = "127.0.0.1:0"\n',
            )
            init = collector.cli("ca", "init", "--name", "localhost", "--address", "127.0.0.1")
            if init.returncode:
                raise SystemExit(f"ca init failed: {init.stderr}")
            certs = base / "certs"
            mint(collector.config_path, args.agents, certs)
        collector.start()
        try:
            time.sleep(SETTLE)
            figures = asyncio.run(_measure(collector, certs, args.agents))
        finally:
            collector.stop()
    figures.update(agents=args.agents, tls=not args.plaintext)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
