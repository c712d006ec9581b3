"""Checking the storage and backup parts of a report (Report fields 10-14).

Same rules as the rest of validate.py: bounded counts, no two entries with
the same identity (they would be duplicate series and Prometheus would drop
the whole scrape), and numbers the risk rules can trust (a NaN or infinite
objective would make a backup never stale). String lengths are bounded for
every field by validate_walk, which validate_request runs first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import grpc

from dcguard.collector.errors import Rejection
from dcguard.v1 import collector_pb2 as pb

__all__ = ["COPY_LOCATIONS", "DATA_KINDS", "MAX_ENTRIES", "validate_storage"]

MAX_ENTRIES = 256
# Backup.copy_location: a label value of dcguard_backup_copy_location, so a closed set.
COPY_LOCATIONS = frozenset(
    ("", "same_disk", "other_disk", "this_host", "other_host", "offline", "immutable")
)

# DataLocation.kind: a label value of dcguard_data_location_backed_up, so a closed set
# (the agent's data_locations.KINDS).
DATA_KINDS = frozenset(("postgresql", "mysql", "samba", "configured", "web", "srv", "home"))


def _invalid(report: pb.Report, what: str) -> Rejection:
    return Rejection(
        grpc.StatusCode.INVALID_ARGUMENT, "invalid_report", f"report {report.sequence}: {what}"
    )


def _unique(report: pb.Report, kind: str, keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise _invalid(report, f"{kind} {key[:64]!r} appears twice")
        seen.add(key)


def _finite(report: pb.Report, what: str, *values: float) -> None:
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise _invalid(report, f"{what} must be finite and not negative")


def validate_storage(report: pb.Report) -> None:
    """Raise Rejection for the first thing wrong with disks, arrays, I/O errors or backups."""
    locations = report.data_coverage.locations
    lists = (report.disks, report.raid_arrays, report.io_errors, report.backups, locations)
    if any(len(items) > MAX_ENTRIES for items in lists) or any(
        len(d.attributes) > MAX_ENTRIES for d in report.disks
    ):
        raise Rejection(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too_large",
            f"report {report.sequence}: too many storage entries",
        )
    for d in report.disks:
        _unique(report, f"disk {d.device} attribute", (str(a.id) for a in d.attributes))
        _finite(report, f"disk {d.device[:64]} temperature", d.temperature_celsius)
    for a in report.raid_arrays:
        _finite(report, f"array {a.name[:64]} sync progress", a.sync_progress_ratio)
    for b in report.backups:
        _finite(
            report,
            f"backup {b.job[:64]!r} rpo_seconds and verify_every_seconds",
            b.rpo_seconds,
            b.verify_every_seconds,
        )
        _finite(
            report,
            f"backup {b.job[:64]!r} restore_test_every_seconds and the restore "
            "test's duration_seconds",
            b.restore_test_every_seconds,
            b.restore_test.duration_seconds,
        )
        if b.copy_location not in COPY_LOCATIONS:
            raise _invalid(
                report,
                f"backup {b.job[:64]!r} copy_location "
                f"{b.copy_location[:32]!r} is not one of "
                f"{', '.join(sorted(COPY_LOCATIONS - {''}))}",
            )
    for location in locations:
        if not location.path.startswith("/") or location.kind not in DATA_KINDS:
            raise _invalid(
                report,
                f"data location {location.path[:64]!r} must be an absolute path of kind "
                f"{', '.join(sorted(DATA_KINDS))}, got kind {location.kind[:32]!r}",
            )
    _unique(report, "data location", (d.path for d in locations))
    _unique(report, "disk", (d.device for d in report.disks))
    _unique(report, "array", (a.name for a in report.raid_arrays))
    _unique(report, "I/O error device", (e.device for e in report.io_errors))
    _unique(report, "backup job", (b.job for b in report.backups))
    for kind, names in (
        ("disk", (d.device for d in report.disks)),
        ("array", (a.name for a in report.raid_arrays)),
        ("I/O error device", (e.device for e in report.io_errors)),
        ("backup job", (b.job for b in report.backups)),
    ):
        if any(not name for name in names):
            raise _invalid(report, f"a {kind} has no name")
