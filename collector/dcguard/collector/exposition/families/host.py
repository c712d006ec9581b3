"""Host health: CPU, memory, swap, load, boot time, processes."""

from __future__ import annotations

from collections.abc import Hashable

from dcguard.collector.exposition.families import AddSample
from dcguard.collector.exposition.text import Family
from dcguard.collector.store import AgentRecord

__all__ = ["HostGroup"]

_FIELDS = (
    ("dcguard_host_cpu_utilization_ratio", "cpu_utilization_ratio", "Share of all CPUs busy, 0-1."),
    ("dcguard_host_cpus", "cpu_count", "Number of logical CPUs."),
    ("dcguard_host_memory_total_bytes", "memory_total_bytes", "Physical memory."),
    (
        "dcguard_host_memory_available_bytes",
        "memory_available_bytes",
        "Memory available without swapping.",
    ),
    ("dcguard_host_swap_total_bytes", "swap_total_bytes", "Swap space."),
    ("dcguard_host_swap_used_bytes", "swap_used_bytes", "Swap space in use."),
    ("dcguard_host_load1", "load1", "1-minute load average."),
    ("dcguard_host_load5", "load5", "5-minute load average."),
    ("dcguard_host_load15", "load15", "15-minute load average."),
    ("dcguard_host_boot_timestamp_seconds", "boot_time_seconds", "Time the host booted."),
    ("dcguard_host_processes", "processes", "Number of processes."),
)


class HostGroup:
    families: tuple[Family, ...] = tuple(Family(name, "gauge", text) for name, _, text in _FIELDS)
    live_families: tuple[Family, ...] = ()

    def key(self, record: AgentRecord) -> Hashable | None:
        return None  # changes with every report

    def render(self, record: AgentRecord, add: AddSample) -> None:
        if record.latest is None or not record.latest.HasField("host"):
            return
        health = record.latest.host
        for name, field, _ in _FIELDS:
            add(name, (), getattr(health, field))

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        pass
