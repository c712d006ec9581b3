"""Keeping a report within the collector's default limits, the most important entries first.

A server with 300 mounts built a report the collector refused (more than 256
filesystems), and since every report of it was refused, the host never
appeared at all. So each list of a report is cut to the limit the collector
applies by default (dcguard/common/limits.py, the one definition both use),
keeping first what an alert or a risk reason needs, and the number left out
rides the report (Report.omitted_entries, shown by the collector as
dcguard_agent_report_omitted_entries{kind}).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from dcguard.common.limits import MAX_ENTRIES, MAX_EVENTS_PER_REPORT, MAX_FILESYSTEMS, MAX_SOURCES
from dcguard.v1 import collector_pb2 as pb

__all__ = ["cap_report"]

log = logging.getLogger(__name__)


def _filesystem_rank(fs: pb.Filesystem) -> tuple[bool, bool, float]:
    # Read-only and unreadable (hung) mounts first: each is a finding on its
    # own. Then the fullest, which the filling and almost-full reasons need;
    # a nearly empty mount is the one whose absence costs nothing.
    used = 1.0 - fs.avail_bytes / fs.size_bytes if fs.size_bytes else 0.0
    return (not fs.readonly, not fs.error, -used)


def _disk_rank(disk: pb.Disk) -> tuple[bool, bool]:
    return (disk.smart_available and disk.healthy, not disk.smart_available)


def _io_rank(device: pb.DeviceIoErrors) -> int:
    return -device.errors_total


# list → (limit, importance order; None keeps the sources' order).
_RULES: dict[str, tuple[int, Callable[[Any], Any] | None]] = {
    "filesystems": (MAX_FILESYSTEMS, _filesystem_rank),
    "sources": (MAX_SOURCES, None),
    "disks": (MAX_ENTRIES, _disk_rank),
    "raid_arrays": (MAX_ENTRIES, lambda array: not array.degraded),
    "io_errors": (MAX_ENTRIES, _io_rank),
    "backups": (MAX_ENTRIES, None),
    "events": (MAX_EVENTS_PER_REPORT, None),
}
# The kinds that were cut last time: logged when cutting starts and stops.
_cutting: dict[str, int] = {}


def cap_report(report: pb.Report) -> None:
    """Cut each list of the report to its limit, in place; record what was left out."""
    for kind, (limit, rank) in _RULES.items():
        entries = getattr(report, kind)
        extra = len(entries) - limit
        if extra <= 0:
            if _cutting.pop(kind, None) is not None:
                log.info("report lists no more %s than the collector takes", kind)
            continue
        kept = sorted(entries, key=rank)[:limit] if rank is not None else list(entries)[:limit]
        copies = [type(entry)() for entry in kept]
        for copy, entry in zip(copies, kept):
            copy.CopyFrom(entry)
        del entries[:]
        entries.extend(copies)
        report.omitted_entries[kind] = extra
        if _cutting.get(kind) is None:
            log.warning(
                "%d %s are more than the collector takes in one report (%d): the "
                "%d least important are left out, and counted",
                limit + extra,
                kind,
                limit,
                extra,
            )
        _cutting[kind] = extra
