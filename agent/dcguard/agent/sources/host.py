"""host: CPU utilisation, memory, swap, load, boot time and process count.

Each cycle reads /proc/stat and /proc/meminfo once and lists /proc once.
The values are psutil's (cpu_times, virtual_memory, swap_memory, cpu_count,
boot_time, pids), which would read /proc/stat three times, /proc/meminfo
twice and /proc/vmstat once; psutil still covers what a kernel leaves out.
"""

from __future__ import annotations

import os

import psutil

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["HostSource"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# user nice system idle iowait irq softirq steal guest guest_nice: what psutil sums.
_CPU_FIELDS = 10


class HostSource:
    name = "host"

    def __init__(self, proc: str = "/proc") -> None:
        self._stat = f"{proc}/stat"
        self._meminfo = f"{proc}/meminfo"
        self._proc = os.fsencode(proc)
        # CPU utilisation is a ratio over the time since the previous cycle;
        # the first cycle measures since boot.
        self._previous: tuple[float, float] = (0.0, 0.0)

    def collect(self, report: pb.Report) -> None:
        with open(self._stat, "rb") as handle:
            stat = handle.read().split(b"\n")
        # The first line sums every CPU; cpu0, cpu1, … follow, one per online CPU.
        ticks = [int(field) for field in stat[0].split()[1 : _CPU_FIELDS + 1]]
        idle = (ticks[3] + (ticks[4] if len(ticks) > 4 else 0)) / _CLOCK_TICKS
        total = sum(ticks) / _CLOCK_TICKS
        cpus = 0
        boot_time = None
        for line in stat[1:]:
            if line.startswith(b"cpu"):
                cpus += 1
            elif line.startswith(b"btime "):
                boot_time = float(line.split()[1])
                break
        prev_idle, prev_total = self._previous
        self._previous = (idle, total)
        elapsed = total - prev_total
        busy = 1.0 - (idle - prev_idle) / elapsed if elapsed > 0 else 0.0

        memory = self._memory()
        load1, load5, load15 = os.getloadavg()
        report.host.CopyFrom(
            pb.HostHealth(
                cpu_utilization_ratio=min(max(busy, 0.0), 1.0),
                cpu_count=cpus or psutil.cpu_count() or 0,
                memory_total_bytes=memory[0],
                memory_available_bytes=memory[1],
                swap_total_bytes=memory[2],
                swap_used_bytes=memory[3],
                load1=load1,
                load5=load5,
                load15=load15,
                boot_time_seconds=psutil.boot_time() if boot_time is None else boot_time,
                # One Path per process would cost more than the listing.
                processes=sum(map(bytes.isdigit, os.listdir(self._proc))),  # noqa: PTH208
            )
        )

    def _memory(self) -> tuple[int, int, int, int]:
        """Memory total and available, swap total and used, in bytes, as psutil has them."""
        with open(self._meminfo, "rb") as handle:
            meminfo = b"\n" + handle.read()
        total = _kib(meminfo, b"MemTotal:")
        if total is None:
            memory = psutil.virtual_memory()
            total, available = memory.total, memory.available
        else:
            available = _kib(meminfo, b"MemAvailable:") or 0
            if not 0 < available <= total:  # an old kernel, a kernel bug, a container
                available = psutil.virtual_memory().available
        swap_total = _kib(meminfo, b"SwapTotal:")
        swap_free = _kib(meminfo, b"SwapFree:")
        if swap_total is None or swap_free is None:
            swap = psutil.swap_memory()
            return total, available, swap.total, swap.used
        return total, available, swap_total, swap_total - swap_free

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


def _kib(meminfo: bytes, key: bytes) -> int | None:
    """The value of one "Key:   N kB" line of meminfo (which starts with a newline), in bytes."""
    start = meminfo.find(b"\n" + key)
    if start < 0:
        return None
    start += len(key) + 1
    end = meminfo.find(b"\n", start)
    fields = meminfo[start : end if end >= 0 else len(meminfo)].split()
    try:
        return int(fields[0]) * 1024
    except (IndexError, ValueError):
        return None


@register("host", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    config.table("host").finish()
    return HostSource(str(context.proc_root))
