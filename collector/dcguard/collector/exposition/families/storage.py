"""Disks (SMART), md RAID arrays and kernel I/O errors.

The attribute label of dcguard_disk_smart_attribute_* is the SMART attribute
id in decimal ("5", "197"): ids are stable across vendors and smartctl
versions, names are not. A disk or array listed twice in one report is
rendered once (the first), so a confused agent cannot produce duplicate
series, which would make Prometheus drop the whole scrape.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from dcguard.collector.exposition.families import AddSample, serialized
from dcguard.collector.exposition.text import Family
from dcguard.collector.store import AgentRecord
from dcguard.v1 import collector_pb2 as pb

__all__ = ["StorageGroup"]

_G, _C = "gauge", "counter"


def _ts(seconds: int, nanos: int) -> float:
    return seconds + nanos / 1e9


class StorageGroup:
    families: tuple[Family, ...] = (
        Family(
            "dcguard_disk_smart_available",
            _G,
            "1 if SMART data could be read from the disk, else 0.",
        ),
        Family(
            "dcguard_disk_smart_healthy",
            _G,
            "1 if the disk passes its SMART overall health check, 0 if it fails.",
        ),
        Family(
            "dcguard_disk_smart_attribute_raw",
            _G,
            "Raw value of a SMART attribute; attribute is the decimal id.",
        ),
        Family(
            "dcguard_disk_smart_attribute_value",
            _G,
            "Normalised value of a SMART attribute (vendor scale, lower is worse).",
        ),
        Family(
            "dcguard_disk_smart_attribute_failing",
            _G,
            "1 if the attribute's normalised value is at or below its threshold now.",
        ),
        Family(
            "dcguard_disk_standby",
            _G,
            "1 if the disk was in standby and not woken; SMART values are the last read "
            "(none when it slept since the agent started).",
        ),
        Family(
            "dcguard_disk_smart_read_timestamp_seconds",
            _G,
            "Time the disk's SMART values were read.",
        ),
        Family("dcguard_disk_temperature_celsius", _G, "Disk temperature."),
        Family("dcguard_disk_power_on_seconds", _G, "Disk power-on time."),
        Family(
            "dcguard_disk_nvme_critical_warning", _G, "NVMe critical warning bit field (0 = none)."
        ),
        Family(
            "dcguard_disk_nvme_media_errors_total", _C, "NVMe unrecovered data integrity errors."
        ),
        Family(
            "dcguard_disk_nvme_percentage_used_ratio",
            _G,
            "NVMe estimate of rated endurance used, 1 = 100 % (may exceed 1).",
        ),
        Family("dcguard_raid_degraded", _G, "1 if the md array is degraded."),
        Family("dcguard_raid_disks_active", _G, "Active member disks of the md array."),
        # DESIGN.md names this one with _total; promtool accepts _total only on
        # counters. It only grows (an array is reshaped to more disks, almost
        # never fewer), so it is typed counter; the same value as a plain
        # gauge is dcguard_raid_disks_required (node_exporter's name).
        Family(
            "dcguard_raid_disks_total",
            _C,
            "Member disks the md array should have (same as dcguard_raid_disks_required).",
        ),
        Family("dcguard_raid_disks_required", _G, "Member disks the md array should have."),
        Family("dcguard_raid_disks_failed", _G, "Members marked failed (F)."),
        Family("dcguard_raid_disks_spare", _G, "Spare members."),
        Family(
            "dcguard_raid_sync_progress_ratio",
            _G,
            "Progress of a running resync, recovery, check or reshape, 0-1.",
        ),
        Family("dcguard_raid_info", _G, "md array level and state; always 1."),
        Family(
            "dcguard_disk_io_errors_total",
            _C,
            "I/O errors the kernel logged for the device since the agent was installed.",
        ),
        Family(
            "dcguard_disk_io_last_error_timestamp_seconds",
            _G,
            "Time of the last kernel I/O error for the device.",
        ),
    )
    live_families: tuple[Family, ...] = ()

    def key(self, record: AgentRecord) -> Hashable | None:
        report = record.latest
        if report is None:
            return ()
        # SMART is read every few minutes and arrays rarely change: most
        # reports carry the same bytes here as the one before.
        return serialized(report.disks, report.raid_arrays, report.io_errors)

    def render(self, record: AgentRecord, add: AddSample) -> None:
        report = record.latest
        if report is None:
            return
        self._disks(report.disks, add)
        seen: set[str] = set()
        for a in report.raid_arrays:
            if a.name in seen:
                continue
            seen.add(a.name)
            array = (("array", a.name),)
            add("dcguard_raid_degraded", array, a.degraded)
            add("dcguard_raid_disks_active", array, a.disks_active)
            add("dcguard_raid_disks_total", array, a.disks_total)
            add("dcguard_raid_disks_required", array, a.disks_total)
            add("dcguard_raid_disks_failed", array, a.disks_failed)
            add("dcguard_raid_disks_spare", array, a.disks_spare)
            add("dcguard_raid_info", (*array, ("level", a.level), ("state", a.state)), 1)
            if a.sync_action:
                add(
                    "dcguard_raid_sync_progress_ratio",
                    (*array, ("action", a.sync_action)),
                    a.sync_progress_ratio,
                )
        seen.clear()
        for e in report.io_errors:
            if e.device in seen:
                continue
            seen.add(e.device)
            device = (("device", e.device),)
            add("dcguard_disk_io_errors_total", device, e.errors_total)
            if e.HasField("last_error_at"):
                add(
                    "dcguard_disk_io_last_error_timestamp_seconds",
                    device,
                    _ts(e.last_error_at.seconds, e.last_error_at.nanos),
                )

    @staticmethod
    def _disks(disks: Iterable[pb.Disk], add: AddSample) -> None:
        seen: set[str] = set()
        for d in disks:
            if d.device in seen:
                continue
            seen.add(d.device)
            device = (("device", d.device),)
            add("dcguard_disk_smart_available", device, d.smart_available)
            # Before the availability test: a disk asleep since the agent started has
            # no SMART values yet, and "asleep" must still read apart from "unreadable".
            add("dcguard_disk_standby", device, d.in_standby)
            if not d.smart_available:
                continue
            add(
                "dcguard_disk_smart_healthy",
                (*device, ("model", d.model), ("serial", d.serial)),
                d.healthy,
            )
            if d.HasField("read_at"):
                add(
                    "dcguard_disk_smart_read_timestamp_seconds",
                    device,
                    _ts(d.read_at.seconds, d.read_at.nanos),
                )
            add("dcguard_disk_temperature_celsius", device, d.temperature_celsius)
            add("dcguard_disk_power_on_seconds", device, d.power_on_hours * 3600)
            if d.protocol.upper() == "NVME":
                add("dcguard_disk_nvme_critical_warning", device, d.nvme_critical_warning)
                add("dcguard_disk_nvme_media_errors_total", device, d.nvme_media_errors)
                add("dcguard_disk_nvme_percentage_used_ratio", device, d.nvme_percentage_used / 100)
            ids: set[int] = set()
            for a in d.attributes:
                if a.id in ids:
                    continue
                ids.add(a.id)
                attribute = (*device, ("attribute", str(a.id)))
                add("dcguard_disk_smart_attribute_raw", attribute, a.raw)
                add("dcguard_disk_smart_attribute_value", attribute, a.value)
                add("dcguard_disk_smart_attribute_failing", attribute, a.failing_now)

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        pass
