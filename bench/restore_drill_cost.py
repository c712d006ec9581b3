"""What a restore drill costs the host, and whether it moves the agent's report cycle.

Builds a real restic repository (about --size-gib GiB of random, hence
incompressible, files: many small ones, a few hundred of a few MiB, two big
ones), then runs a real `dcguard-agent run` at the default 15 s interval with
only the `host` and `backup` sources, one restic job on that repository with
the default drill budget (restore_test_max_bytes 128MiB, restore_test_max_files
100) and `restore_test_every` = --drill-every, so several drills run during the
bench. It delivers to a real `dcguard-collector serve` on 127.0.0.1, in
insecure mode (plain gRPC on loopback: TLS is not what is measured here).
Real time throughout: no accelerated cycles.

Before the agent starts, the repository and the source files are evicted from
the page cache (posix_fadvise DONTNEED, file by file: no root, nothing else on
the host touched), so the first drill reads from disk as on a server where
the backup ran hours ago; later drills may find part of the repository cached.

Measured for the agent's whole process tree (the agent, and the nice / ionice
/ restic processes it starts), sampled every --sample seconds:
- CPU seconds: utime+stime of the agent, of the children it has reaped
  (cutime/cstime) and of every descendant still running;
- bytes read and written: /proc/PID/io of the agent (its reaped children
  included) plus each descendant still running. read_bytes/write_bytes are
  what reached the storage layer, rchar/wchar every byte through read()/write();
  the restored sample is written, read back for its SHA-256 and deleted, so
  cancelled_write_bytes shows how much of it never had to reach the disk;
- each drill's wall time and sample, from state_dir/backup-state.json (the
  drill's own duration, at its end); its CPU and bytes are the tree's growth
  over that window (which also holds the few ms of any report cycle in it);
- each report cycle's source durations, from the collector's
  dcguard_agent_source_duration_seconds{source}, split into cycles collected
  while a drill ran and the others (the first two cycles, start-up, left out).

Every process it starts is stopped at the end, pass or fail; the work
directory is removed unless --keep.

    .venv/bin/python bench/restore_drill_cost.py [--minutes 5] [--size-gib 2] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import IO_FIELDS, descendants, tree_cpu_seconds, tree_io
from tests.support import Agent, Collector, parse_metrics

MIB = 1024 * 1024
CHUNK = 4 * MIB


@dataclass
class Sample:
    at: float  # wall clock
    cpu: float
    io: dict[str, int]


@dataclass
class Cycle:
    at: float  # the report's collected_at
    durations: dict[str, float]


@dataclass
class Drill:
    at: float
    duration: float
    success: bool
    files: int
    bytes: int
    message: str


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    drills: list[Drill] = field(default_factory=list)
    tools: dict[int, str] = field(default_factory=dict)  # pid -> command line, seen alive
    niceness: dict[int, int] = field(default_factory=dict)  # pid -> highest nice value seen


def make_source(directory: Path, size_gib: float, seed: int = 17) -> tuple[int, int]:
    """Random files, about size_gib GiB in all; (files, bytes)."""
    rng = random.Random(seed)
    target = int(size_gib * 1024 * MIB)
    sizes = [rng.randint(1, 64) * 1024 for _ in range(2000)]  # ~64 MiB of small files
    sizes += [100 * MIB, 100 * MIB]  # two big ones (never in a 128 MiB sample with others)
    while sum(sizes) < target:
        sizes.append(rng.randint(1 * MIB, 5 * MIB))
    files = 0
    for index, size in enumerate(sizes):
        sub = directory / f"d{index % 40:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        with open(sub / f"f{index:05d}.bin", "wb") as out:
            left = size
            while left:
                out.write(os.urandom(min(left, CHUNK)))
                left -= min(left, CHUNK)
        files += 1
    return files, sum(sizes)


def evict(directory: Path) -> None:
    """Drop directory's files from the page cache (clean pages only: sync first)."""
    os.sync()
    for dirpath, _, names in os.walk(directory):
        for name in names:
            try:
                fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def du(directory: Path) -> int:
    return sum(
        (Path(dirpath) / name).stat().st_size
        for dirpath, _, names in os.walk(directory)
        for name in names
    )


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def niceness(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[16])


def read_drill(state_file: Path) -> Drill | None:
    try:
        jobs = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    for entry in jobs.values():
        drill = entry.get("drill") if isinstance(entry, dict) else None
        if isinstance(drill, dict):
            return Drill(
                at=float(drill["at"]),
                duration=float(drill["duration"]),
                success=bool(drill["success"]),
                files=int(drill["files"]),
                bytes=int(drill["bytes"]),
                message=str(drill.get("message", "")),
            )
    return None


def observe(agent: Agent, collector: Collector, seconds: float, every: float) -> Run:
    assert agent.proc is not None
    pid = agent.proc.pid
    state_file = agent.state_dir / "backup-state.json"
    run = Run()
    last_io = dict.fromkeys(IO_FIELDS, 0)
    seen_reports: set[float] = set()
    next_poll = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not agent.running:
            raise SystemExit(f"the agent exited:\n{agent.log()[-3000:]}")
        for child in descendants(pid):
            # Seen again until it is gone: a fork is seen before it execs nice, ionice, restic.
            run.tools[child] = cmdline(child) or run.tools.get(child, "")
            run.niceness[child] = max(run.niceness.get(child, 0), niceness(child))
        io = tree_io(pid)
        # A child between its exit and its reaping can read as nothing: never go back.
        last_io = {key: max(last_io[key], io[key]) for key in IO_FIELDS}
        run.samples.append(Sample(time.time(), tree_cpu_seconds(pid), dict(last_io)))
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + 1.0
            poll_collector(collector, run, seen_reports)
            drill = read_drill(state_file)
            if drill is not None and all(d.at != drill.at for d in run.drills):
                run.drills.append(drill)
        time.sleep(every)
    poll_collector(collector, run, seen_reports)
    return run


def poll_collector(collector: Collector, run: Run, seen: set[float]) -> None:
    try:
        metrics = parse_metrics(collector.metrics_text())
    except OSError:
        return
    stamp = None
    durations: dict[str, float] = {}
    for (name, labels), value in metrics.items():
        if name == "dcguard_agent_report_timestamp_seconds":
            stamp = value
        elif name == "dcguard_agent_source_duration_seconds":
            durations[dict(labels)["source"]] = value
    if stamp is not None and stamp not in seen:
        seen.add(stamp)
        run.cycles.append(Cycle(stamp, durations))


def window(run: Run, start: float, end: float) -> tuple[float, dict[str, int]]:
    """CPU seconds and I/O bytes of the tree between the samples around [start, end]."""
    before = [s for s in run.samples if s.at <= start] or run.samples[:1]
    after = [s for s in run.samples if s.at >= end] or run.samples[-1:]
    first, last = before[-1], after[0]
    return last.cpu - first.cpu, {k: last.io[k] - first.io[k] for k in IO_FIELDS}


def during(cycle: Cycle, drills: list[Drill], margin: float = 1.0) -> bool:
    return any(d.at - d.duration - margin <= cycle.at <= d.at + margin for d in drills)


def summary(values: list[float]) -> str:
    if not values:
        return "n=0"
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms)} mean {statistics.fmean(ms):.2f} ms, "
        f"median {statistics.median(ms):.2f} ms, max {max(ms):.2f} ms"
    )


def mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


@dataclass
class Repository:
    path: Path
    password: Path
    files: int
    source_bytes: int
    bytes: int
    made_s: float
    backup_s: float


def build_repository(work: Path, size_gib: float) -> Repository:
    """The source files, a restic backup of them, both then evicted from the page cache."""
    source, repo = work / "source", work / "repo"
    password = work / "restic.pass"
    password.write_text("bench-password\n")
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(password),
        "RESTIC_CACHE_DIR": str(work / "bench-cache"),
    }
    t0 = time.monotonic()
    files, source_bytes = make_source(source, size_gib)
    made = time.monotonic() - t0
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    subprocess.run(
        ["restic", "backup", "--quiet", str(source)], env=env, check=True, capture_output=True
    )
    backed = time.monotonic() - t0
    evict(repo)
    evict(source)
    return Repository(repo, password, files, source_bytes, du(repo), made, backed)


def agent_config(repo: Repository, drill_every: str, cache: Path) -> str:
    return f"""
    [sources]
    disable_defaults = true
    host = true
    backup = true

    [[backup]]
    name = "bench"
    kind = "restic"
    repository = "{repo.path}"
    rpo = "1d"
    password_file = "{repo.password}"
    restore_test_every = "{drill_every}"
    env = {{ RESTIC_CACHE_DIR = "{cache}" }}
    """


def print_conditions(
    args: argparse.Namespace, repo: Repository, elapsed: float, loads: list[str]
) -> None:
    print("## Conditions")
    print(f"command         {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"host            {os.cpu_count()} CPUs, {os.uname().release}, restic {restic_version()}")
    print(f"run             {elapsed:.0f} s real time, agent interval 15 s, insecure loopback")
    print(f"load average    start {loads[0]}, end {loads[1]}")
    print(
        f"repository      {repo.bytes / 1024**3:.2f} GiB on disk, {repo.files} files, "
        f"{repo.source_bytes / 1024**3:.2f} GiB of source (made in {repo.made_s:.0f} s, "
        f"restic backup {repo.backup_s:.0f} s)"
    )
    print(
        f"drill budget    restore_test_max_bytes 128MiB, max_files 100, "
        f"restore_test_every {args.drill_every}"
    )
    print()


def print_drills(run: Run) -> None:
    print("## Drills (the agent's whole process tree over each drill)")
    print(
        "| # | result | files | bytes compared | wall s | CPU s | read_bytes | write_bytes "
        "| cancelled_write | rchar | wchar |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    drill_cpu: list[float] = []
    for number, drill in enumerate(run.drills, 1):
        cpu, io = window(run, drill.at - drill.duration, drill.at)
        drill_cpu.append(cpu)
        result = "ok" if drill.success else f"FAILED: {drill.message[:60]}"
        print(
            f"| {number} | {result} | {drill.files} | {mib(drill.bytes)} | {drill.duration:.2f} "
            f"| {cpu:.2f} | {mib(io['read_bytes'])} | {mib(io['write_bytes'])} "
            f"| {mib(io['cancelled_write_bytes'])} | {mib(io['rchar'])} | {mib(io['wchar'])} |"
        )
    total_cpu = run.samples[-1].cpu - run.samples[0].cpu
    total_io = {k: run.samples[-1].io[k] - run.samples[0].io[k] for k in IO_FIELDS}
    print()
    print(
        f"whole run: CPU {total_cpu:.2f} s (drills {sum(drill_cpu):.2f} s), read_bytes "
        f"{mib(total_io['read_bytes'])}, write_bytes {mib(total_io['write_bytes'])}, "
        f"rchar {mib(total_io['rchar'])}, wchar {mib(total_io['wchar'])}"
    )
    kinds: dict[str, int] = {}
    for child, command in run.tools.items():
        words = command.split()
        if "restic" not in words:
            continue
        verb = next((w for w in words[words.index("restic") + 1 :] if not w.startswith("-")), "?")
        kind = f"{verb} (nice {run.niceness.get(child, 0)})"
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"restic processes seen: {', '.join(f'{k} x{v}' for k, v in sorted(kinds.items()))}")
    print()


def print_cycles(run: Run) -> None:
    print("## Report cycle: source durations (collector's dcguard_agent_source_duration_seconds)")
    cycles = run.cycles[2:]
    inside = [c for c in cycles if during(c, run.drills)]
    outside = [c for c in cycles if not during(c, run.drills)]
    sources = sorted({name for c in cycles for name in c.durations})
    print(f"cycles: {len(run.cycles)} reports, first 2 left out; {len(inside)} during a drill")
    for name in [*sources, "all sources"]:

        def value(c: Cycle, name: str = name) -> float:
            return sum(c.durations.values()) if name == "all sources" else c.durations[name]

        print(f"{name:<12} during a drill:  {summary([value(c) for c in inside])}")
        print(f"{'':<12} outside drills:  {summary([value(c) for c in outside])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument(
        "--drill-every",
        default="20s",
        help="the job's restore_test_every: short, so that some report cycles fall in a drill",
    )
    parser.add_argument("--sample", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--dir", type=Path, help="work directory (default: a new one in /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="leave the work directory")
    args = parser.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("restic is not installed")
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="drill-bench-", dir=args.dir))
    else:
        work = Path(tempfile.mkdtemp(prefix="dcguard-drill-bench-", dir="/var/tmp"))
    collector = agent = None
    try:
        repo = build_repository(work, args.size_gib)
        collector = Collector(work / "collector")
        collector.start()
        agent = Agent(
            work / "agent",
            [collector.grpc_address],
            interval="15s",
            extra_config=agent_config(repo, args.drill_every, work / "agent-cache"),
        )
        loads = [fmt_load(os.getloadavg())]
        started = time.time()
        agent.start()
        run = observe(agent, collector, args.minutes * 60, args.sample)
        elapsed = time.time() - started
        loads.append(fmt_load(os.getloadavg()))
    finally:
        if agent is not None:
            agent.stop(timeout=30)
        if collector is not None:
            collector.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_conditions(args, repo, elapsed, loads)
    print_drills(run)
    print_cycles(run)


def restic_version() -> str:
    out = subprocess.run(["restic", "version"], capture_output=True, text=True, check=False)
    parts = out.stdout.split()
    return parts[1] if len(parts) > 1 else "?"


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


if __name__ == "__main__":
    main()
