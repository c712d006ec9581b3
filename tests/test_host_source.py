"""The host source reads /proc once per cycle and reports exactly what psutil would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from unittest import mock

import psutil
import pytest

from dcguard.agent.sources.host import HostSource
from dcguard.v1 import collector_pb2 as pb


class PsutilHost:
    """The source as it was: one psutil call per value (they reread /proc)."""

    def __init__(self) -> None:
        self._previous = (0.0, 0.0)

    def collect(self, report: pb.Report) -> None:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        prev_idle, prev_total = self._previous
        self._previous = (idle, total)
        elapsed = total - prev_total
        busy = 1.0 - (idle - prev_idle) / elapsed if elapsed > 0 else 0.0
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        load1, load5, load15 = os.getloadavg()
        report.host.CopyFrom(
            pb.HostHealth(
                cpu_utilization_ratio=min(max(busy, 0.0), 1.0),
                cpu_count=psutil.cpu_count() or 0,
                memory_total_bytes=memory.total,
                memory_available_bytes=memory.available,
                swap_total_bytes=swap.total,
                swap_used_bytes=swap.used,
                load1=load1,
                load5=load5,
                load15=load15,
                boot_time_seconds=psutil.boot_time(),
                processes=len(psutil.pids()),
            )
        )


def frozen_proc(tmp_path: Path) -> Path:
    """This machine's /proc/stat, meminfo and vmstat, and one directory per process."""
    proc = tmp_path / "proc"
    proc.mkdir()
    for name in ("stat", "meminfo", "vmstat"):
        shutil.copyfile(f"/proc/{name}", proc / name)
    for pid in psutil.pids():
        (proc / str(pid)).mkdir()
    (proc / "self").mkdir()
    return proc


def advance_cpu(proc: Path, busy: int, idle: int) -> None:
    """Add ticks to the first (all-CPU) line of stat: user += busy, idle += idle."""
    lines = (proc / "stat").read_text().split("\n")
    fields = lines[0].split()
    fields[1] = str(int(fields[1]) + busy)
    fields[4] = str(int(fields[4]) + idle)
    lines[0] = " ".join(fields)
    (proc / "stat").write_text("\n".join(lines))


def both(proc: Path, old: PsutilHost, new: HostSource) -> tuple[pb.HostHealth, pb.HostHealth]:
    was, now = pb.Report(), pb.Report()
    with (
        mock.patch.object(psutil, "PROCFS_PATH", str(proc)),
        mock.patch.object(os, "getloadavg", lambda: (1.5, 1.25, 1.0)),
    ):
        old.collect(was)
        new.collect(now)
    return was.host, now.host


def test_same_values_as_psutil_on_the_same_proc(tmp_path):
    proc = frozen_proc(tmp_path)
    old, new = PsutilHost(), HostSource(str(proc))
    for busy, idle in ((0, 0), (300, 100), (0, 500), (7, 0)):
        advance_cpu(proc, busy, idle)
        was, now = both(proc, old, new)
        assert now.cpu_utilization_ratio == pytest.approx(was.cpu_utilization_ratio, abs=1e-9)
        was.ClearField("cpu_utilization_ratio")
        now.ClearField("cpu_utilization_ratio")
        assert now == was
    pids = sum(1 for entry in proc.iterdir() if entry.name.isdigit())
    assert now.processes == pids > 0 and now.memory_total_bytes > 0


def test_what_psutil_covers_when_meminfo_lacks_it(tmp_path):
    proc = frozen_proc(tmp_path)
    meminfo = (proc / "meminfo").read_text().split("\n")
    (proc / "meminfo").write_text(
        "\n".join(
            line
            for line in meminfo
            if not line.startswith(("MemAvailable:", "SwapTotal:", "SwapFree:"))
        )
    )
    was, now = both(proc, PsutilHost(), HostSource(str(proc)))
    assert now.memory_available_bytes == was.memory_available_bytes > 0
    assert (now.swap_total_bytes, now.swap_used_bytes) == (
        was.swap_total_bytes,
        was.swap_used_bytes,
    )


def test_same_values_as_psutil_on_this_machine():
    was, now = pb.Report(), pb.Report()
    PsutilHost().collect(was)
    HostSource().collect(now)
    old, new = was.host, now.host
    assert (new.cpu_count, new.memory_total_bytes, new.swap_total_bytes, new.boot_time_seconds) == (
        old.cpu_count,
        old.memory_total_bytes,
        old.swap_total_bytes,
        old.boot_time_seconds,
    )
    # Moments apart on a busy machine: close, not equal.
    assert new.memory_available_bytes == pytest.approx(old.memory_available_bytes, rel=0.05)
    assert new.swap_used_bytes == pytest.approx(old.swap_used_bytes, abs=64 << 20)
    assert new.processes == pytest.approx(old.processes, abs=50)
    assert new.cpu_utilization_ratio == pytest.approx(old.cpu_utilization_ratio, abs=0.01)
