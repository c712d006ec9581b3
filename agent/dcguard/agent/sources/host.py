"""host: CPU utilisation, memory, swap, load, boot time and process count."""

from __future__ import annotations

import os

import psutil

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["HostSource"]


class HostSource:
    name = "host"

    def __init__(self) -> None:
        # CPU utilisation is a ratio over the time since the previous cycle;
        # the first cycle measures since boot.
        self._previous: tuple[float, float] = (0.0, 0.0)

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

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


@register("host", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    config.table("host").finish()
    return HostSource()
