"""Where the agent's CPU goes: per phase of a cycle, per thread, and in child processes.

Runs the real agent (all default sources, delivering to a real collector
on 127.0.0.1) in this process, for --cycles cycles at --interval, with
thread CPU time (time.thread_time) summed around each phase of the report
loop and of the delivery thread. At the end it reads every live thread's
CPU from /proc/self/task (threads the agent started are named; the rest are
grpc's own C threads) and the CPU of the tools the agent ran (reaped
children, plus children still running). Everything is shown in ms per
cycle. With --cprofile, the report loop and the delivery thread are also
run under cProfile and the top functions printed.

    .venv/bin/python bench/agent_profile.py [--cycles 300] [--interval 100ms] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import TICKS, cpu_seconds, tree_cpu_seconds
from dcguard.agent.config import load_config
from dcguard.agent.cycle import agent_loop as service
from dcguard.agent.delivery import loop as delivery
from dcguard.agent.delivery import spool
from dcguard.common.durations import parse_duration
from tests.support import Agent, Collector

_phases: dict[str, float] = defaultdict(float)
_lock = threading.Lock()


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the calling thread's CPU time inside the block to the phase's total."""
    started = time.thread_time()
    try:
        yield
    finally:
        spent = time.thread_time() - started
        with _lock:
            _phases[name] += spent


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with phase(name):
            return fn(*args, **kwargs)

    return wrapper


def instrument(config: Any) -> None:
    """Wrap each source's collect/commit, the spool's append and fsyncs, and delivery."""
    for source in config.sources:
        source.collect = timed(f"collect {source.name}", source.collect)
        source.commit = timed(f"commit {source.name}", source.commit)
    spool.Spool.append = timed("spool.append (all)", spool.Spool.append)  # type: ignore[method-assign]
    spool.Spool.peek = timed("delivery: spool.peek", spool.Spool.peek)  # type: ignore[method-assign]
    spool.Spool.ack = timed("delivery: spool.ack", spool.Spool.ack)  # type: ignore[method-assign]
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        where = "delivery" if threading.current_thread().name == "delivery" else "loop"
        with phase(f"fsync calls ({where})"):
            real_fsync(fd)

    os.fsync = fsync  # type: ignore[assignment]
    sender_submit = service.Sender.submit_serialized
    service.Sender.submit_serialized = timed(  # type: ignore[method-assign]
        "delivery: submit (encode+gzip+grpc)", sender_submit
    )
    build = service.build_report
    service.build_report = timed("build_report (all sources)", build)  # type: ignore[assignment]


def thread_cpu() -> dict[str, float]:
    """CPU seconds of every live thread in this process, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except FileNotFoundError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        name = names.get(int(task.name), f"native: {comm}")
        out[name] += (int(fields[11]) + int(fields[12])) / TICKS
    return out


_not_agent: list[int] = []  # the collector: a child of this process, but not the agent's


def children_cpu() -> float:
    """CPU of the tools this process ran: reaped, and still running (journalctl --follow)."""
    others = sum(tree_cpu_seconds(pid) for pid in _not_agent)
    return tree_cpu_seconds(os.getpid()) - cpu_seconds(os.getpid()) - others


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--interval", default="100ms")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    with tempfile.TemporaryDirectory() as tmp:
        collector = Collector(Path(tmp) / "collector")
        collector.start()
        assert collector.proc is not None
        _not_agent.append(collector.proc.pid)
        try:
            run(Path(tmp), collector, args.cycles, interval, args.cprofile)
        finally:
            collector.stop()


def run(tmp: Path, collector: Collector, cycles: int, interval: float, profile: bool) -> None:
    holder = Agent(tmp / "agent", [collector.grpc_address], interval=f"{round(interval * 1000)}ms")
    config = load_config(holder.config_path)
    instrument(config)
    stop = threading.Event()
    profilers: list[cProfile.Profile] = []
    if profile:
        run_delivery = delivery.Delivery.run

        def profiled_run(self: delivery.Delivery) -> None:
            profiler = cProfile.Profile()
            profilers.append(profiler)
            profiler.runcall(run_delivery, self)

        delivery.Delivery.run = profiled_run  # type: ignore[method-assign]

    counted: dict[str, Any] = {}
    original_loop = service._report_loop

    def loop(*loop_args: Any) -> None:
        # Warm-up cycles (first scans, first connection) are left out of the figures.
        warm = 20
        ticker = loop_args[3]
        real_wait = ticker.wait
        seen = 0

        def wait() -> bool:
            nonlocal seen
            seen += 1
            if seen == warm:
                _phases.clear()
                counted.update(
                    threads=thread_cpu(),
                    children=children_cpu(),
                    process=cpu_seconds(os.getpid()),
                    wall=time.monotonic(),
                )
            if seen == warm + cycles:
                # Before anything stops: the other threads' CPU is only readable while they live.
                counted.update(
                    end_threads=thread_cpu(),
                    end_children=children_cpu(),
                    end_process=cpu_seconds(os.getpid()),
                    end_wall=time.monotonic(),
                )
                stop.set()
            return bool(real_wait())

        ticker.wait = wait
        if profile:
            profiler = cProfile.Profile()
            profilers.append(profiler)
            profiler.runcall(original_loop, *loop_args)
        else:
            original_loop(*loop_args)

    service._report_loop = loop  # type: ignore[assignment]
    service.run_agent(config, stop)
    report(counted, cycles, interval)
    if profile:
        stats = pstats.Stats(profilers[0])
        for extra in profilers[1:]:
            stats.add(extra)
        stats.sort_stats("tottime").print_stats(40)


def report(counted: dict[str, Any], cycles: int, interval: float) -> None:
    threads = counted["end_threads"]
    process = counted["end_process"] - counted["process"]
    children = counted["end_children"] - counted["children"]
    wall = counted["end_wall"] - counted["wall"]

    def ms(seconds: float) -> str:
        return f"{seconds * 1000 / cycles:8.3f} ms/cycle"

    print(f"{cycles} cycles at {interval}s ({wall:.1f}s wall)")
    print(f"process CPU        {ms(process)}")
    print(f"child processes    {ms(children)}")
    print("phases (thread CPU):")
    for name, seconds in sorted(_phases.items(), key=lambda kv: -kv[1]):
        print(f"  {name:40s} {ms(seconds)}")
    print("threads:")
    before = counted["threads"]
    for name, seconds in sorted(threads.items(), key=lambda kv: -kv[1]):
        spent = seconds - before.get(name, 0.0)
        if spent > 0:
            print(f"  {name:40s} {ms(spent)}")


if __name__ == "__main__":
    main()
