"""The rules: one host's latest state → findings, each with a sentence an operator can act on.

Rules run when a host's record changes, never at scrape time. A finding that
depends on the clock (a backup turning stale, an agent falling silent, an I/O
error ageing out) carries the time window in which it is active, so a scrape
only compares numbers and the CLI writes "3 days ago" as of now.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from dcguard.collector.risk.config import Thresholds
from dcguard.collector.risk.history import Trend
from dcguard.collector.store import AgentRecord
from dcguard.v1 import collector_pb2 as pb

__all__ = ["Finding", "evaluate", "one_line", "span"]

_SMART_NAMES = {
    5: "reallocated sectors", 187: "reported uncorrectable errors", 188: "command timeouts",
    197: "pending sectors", 198: "offline uncorrectable sectors",
}
# NVMe critical warning bits (NVMe base spec, SMART / Health log byte 0).
_NVME_WARNINGS = (
    (0x01, "spare capacity below threshold"), (0x02, "temperature out of range"),
    (0x04, "reliability degraded"), (0x08, "media is read-only"),
    (0x10, "volatile memory backup failed"), (0x20, "persistent memory unreliable"),
)


@dataclass(frozen=True)
class Finding:
    """One reason, for one subject (a job, a disk, a mountpoint), active strictly between
    since and until: a backup is stale once its age is *over* the objective."""

    reason: str
    subject: str
    text: Callable[[float], str]
    since: float = -math.inf
    until: float = math.inf

    def active(self, now: float) -> bool:
        return self.since < now < self.until

    @property
    def permanent(self) -> bool:
        """Active at every time, so it can be rendered once, off the scrape path."""
        return self.since == -math.inf and self.until == math.inf

    def sentence(self, now: float) -> str:
        return one_line(self.text(now))


def one_line(text: str, limit: int = 600) -> str:
    """Agent-supplied text (a tool's error, a job name) on one line of bounded length, so
    it can neither break the CLI's layout nor fake a line of it."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def span(seconds: float) -> str:
    """A duration the way an operator says it: "40 s", "25 min", "26h", "3 days"."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f} days"


def size(value: float) -> str:
    """Bytes in binary units with one decimal: "3.2 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def seconds_of(stamp: Timestamp) -> float | None:
    """A Timestamp in seconds, or None when unset (the proto's "never")."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.seconds + stamp.nanos / 1e9


def _fixed(text: str) -> Callable[[float], str]:
    return lambda _now: text


def evaluate(record: AgentRecord, th: Thresholds, trends: Mapping[str, Trend],
             silent_after: float) -> list[Finding]:
    """Every finding for one host, active or pending, in reason order."""
    findings = list(_agent(record, silent_after))
    report = record.latest
    if report is not None:
        for rule in (_backups, _disks, _raid, _filesystems, _io_errors):
            findings.extend(rule(report, th, trends))
    return findings


def _agent(record: AgentRecord, silent_after: float) -> Iterator[Finding]:
    last = record.last_seen
    yield Finding(
        "agent_silent", "agent",
        lambda now: (f"no report from the agent for {span(now - last)} (it reports every "
                     f"{span(record.interval_seconds)}); its disks and backups are unknown "
                     "- check that the server and dcguard-agent are running"),
        since=last + silent_after)


def _backups(report: pb.Report, th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for backup in report.backups:
        yield from _backup(backup, th)
    yield from _offsite(report.backups)


# Copies that survive the loss of this server.
OFF_HOST = frozenset(("other_host", "offline", "immutable"))
_PLACES = {"same_disk": "on the same disk as its data", "other_disk": "on another disk of "
           "this server", "this_host": "on this server"}


def _offsite(backups: Iterable[pb.Backup]) -> Iterator[Finding]:
    """No job whose place the agent knows keeps a copy off this server (3-2-1's "1")."""
    placed = [b for b in backups if b.copy_location]
    if not placed or any(b.copy_location in OFF_HOST for b in placed):
        return
    where = "; ".join(f"backup '{b.job}' is {_PLACES.get(b.copy_location, 'on this server')}"
                      for b in placed[:5])
    more = f" (and {len(placed) - 5} more)" if len(placed) > 5 else ""
    yield Finding("no_offsite_copy", "backups", _fixed(
        f"no backup of this server lies on another host: {where}{more} - one lost server "
        "(fire, theft, ransomware) takes its backups with it; add a copy on another server "
        "(a restic/borg repository over sftp:, rest:, s3:, or a network mount) or declare "
        "an offline or immutable copy with copy_location"))


def _backup(b: pb.Backup, th: Thresholds) -> Iterator[Finding]:
    job = f"backup '{b.job}'"
    last_success = seconds_of(b.last_success)
    last_run = seconds_of(b.last_run)
    rpo = b.rpo_seconds if b.rpo_seconds > 0 else th.default_rpo_seconds
    # The repository could not be read and nothing was ever read from it: whether the
    # job ever succeeded is unknown, so one reason says so and "never succeeded" is not
    # claimed beside it (an unreachable sftp: repository once scored 90, like a failing disk).
    unknown = bool(b.error) and last_success is None and last_run is None
    if unknown:
        yield Finding("backup_failed", job, _fixed(
            f"{job} could not be checked: {b.error}; whether it has ever succeeded is unknown "
            "- check that this server can reach and read where the backup is stored"))
    elif b.error:
        yield Finding("backup_failed", job, _fixed(f"{job} could not be checked: {b.error}"))
    if last_success is None and not unknown:
        detail = f"; its last run failed: {b.message}" if last_run is not None and b.message \
            else ""
        yield Finding("backup_missing", job, _fixed(
            f"{job} has never succeeded{detail} - run it now and check its schedule"))
    elif last_success is not None:
        done = last_success
        yield Finding("backup_stale", job, lambda now: (
            f"{job} last succeeded {span(now - done)} ago; objective is {span(rpo)}"),
            since=done + rpo)
    if last_run is not None and not b.last_run_success and last_success is not None:
        ran, message = last_run, b.message
        yield Finding("backup_failed", job, lambda now: (
            f"{job} failed its last run {span(now - ran)} ago"
            + (f": {message}" if message else "")))
    yield from _verification(b, job)
    yield from _restore_test(b, job)
    if b.same_device:
        disks = ", ".join(b.shared_disks) or "the same disk"
        yield Finding("backup_same_device", job, _fixed(
            f"{job} is stored on the same physical disk as its data ({disks}); one disk "
            "failure loses both - move it to another disk or server"))


def _verification(b: pb.Backup, job: str) -> Iterator[Finding]:
    if b.verify_every_seconds <= 0:
        return
    every = b.verify_every_seconds
    verified = seconds_of(b.last_verified)
    if verified is None:
        yield Finding("backup_unverified", job, _fixed(
            f"{job} has never been verified; a check is due every {span(every)}"))
        return
    if not b.last_verify_success:
        # The agent sends the check's error lines as the message when the run itself
        # has none to say (a successful last run).
        said = f" ({b.message})" if b.message and b.last_run_success else ""
        yield Finding("backup_failed", job, lambda now: (
            f"{job} failed its last verification {span(now - verified)} ago{said}; the "
            "repository may be damaged - run the check by hand and repair or start a new "
            "repository"))
    yield Finding("backup_unverified", job, lambda now: (
        f"{job} was last verified {span(now - verified)} ago; a check is due every "
        f"{span(every)}"), since=verified + every)


def _restore_test(b: pb.Backup, job: str) -> Iterator[Finding]:
    """The last restore drill failed: the backup exists but would not give the data back."""
    if not b.HasField("restore_test") or b.restore_test.success:
        return
    drill = b.restore_test
    tested = seconds_of(drill.time)
    what = drill.message or "; ".join(drill.mismatches) or "no detail given"
    fix = ("make a new dump now and check the backup script's log (disk full, killed, "
           "timed out)" if b.kind == "files" else
           "run `restic check --read-data` / `borg check --verify-data` by hand, repair or "
           "start a new repository, and take a fresh backup")
    yield Finding("backup_unrestorable", job, lambda now: (
        f"{job} failed its restore test"
        + (f" {span(now - tested)} ago" if tested is not None else "")
        + f": {what} - the backup would not give this data back; {fix}"))


def _disk_name(d: pb.Disk) -> str:
    extra = ", ".join(x for x in (d.model, f"serial {d.serial}" if d.serial else "") if x)
    return f"disk {d.device}" + (f" ({extra})" if extra else "")


def _disks(report: pb.Report, th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for d in report.disks:
        if not d.smart_available:
            continue
        name = _disk_name(d)
        asleep = " (values from before the disk went to standby)" if d.in_standby else ""
        problems = _failing(d)
        if problems:
            yield Finding("disk_smart_failing", d.device, _fixed(
                f"{name} {'; '.join(problems)}{asleep} - copy its data off and replace it"))
        counts = _degrading(d, th)
        if counts:
            yield Finding("disk_smart_degrading", d.device, _fixed(
                f"{name} reports {', '.join(counts)}{asleep} - make sure its backups are "
                "current and plan a replacement"))


def _failing(d: pb.Disk) -> list[str]:
    """What says the disk is failing now: overall health, attributes, NVMe warnings."""
    problems = [] if d.healthy else ["fails its SMART health check"]
    problems += [f"has SMART {a.id}{' ' + a.name if a.name else ''} below its threshold now"
                 for a in d.attributes if a.failing_now]
    bits = [text for bit, text in _NVME_WARNINGS if d.nvme_critical_warning & bit]
    if bits:
        problems.append("reports NVMe critical warning: " + ", ".join(bits))
    return problems


def _degrading(d: pb.Disk, th: Thresholds) -> list[str]:
    """Counts that predict failure (Backblaze's attributes, NVMe media errors and wear)."""
    counts = [f"{a.raw} {_SMART_NAMES.get(a.id, a.name or 'SMART ' + str(a.id))} (SMART {a.id})"
              for a in d.attributes
              if a.id in th.smart_attributes and a.raw > th.smart_raw_tolerated]
    if d.nvme_media_errors > 0:
        counts.append(f"{d.nvme_media_errors} NVMe media errors")
    if d.nvme_percentage_used >= th.nvme_percentage_used_limit:
        counts.append(f"{d.nvme_percentage_used}% of its rated endurance used")
    return counts


def _raid(report: pb.Report, _th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for a in report.raid_arrays:
        if not (a.degraded or a.disks_failed or a.disks_active < a.disks_total):
            continue
        parts = [f"{a.disks_active} of {a.disks_total} disks active"]
        if a.failed_members:
            parts.append("failed: " + ", ".join(a.failed_members))
        if a.sync_action:
            parts.append(f"{a.sync_action} {a.sync_progress_ratio * 100:.0f}% done")
        level = f" ({a.level})" if a.level else ""
        yield Finding("raid_degraded", a.name, _fixed(
            f"RAID array {a.name}{level} is degraded: {'; '.join(parts)} - one more disk "
            "failure can lose the array; replace the failed disk"))


def _fs_ignored(fs: pb.Filesystem, th: Thresholds) -> bool:
    return bool(fs.error) or fs.mountpoint in th.ignore_mountpoints or (
        fs.fstype in th.readonly_expected_fstypes)


def _filesystems(report: pb.Report, th: Thresholds,
                 trends: Mapping[str, Trend]) -> Iterator[Finding]:
    for fs in report.filesystems:
        if _fs_ignored(fs, th):
            continue
        where = f"filesystem {fs.mountpoint} ({fs.device})" if fs.device else \
            f"filesystem {fs.mountpoint}"
        if fs.readonly and fs.mountpoint not in th.readonly_expected_mountpoints:
            yield Finding("filesystem_readonly", fs.mountpoint, _fixed(
                f"{where} is mounted read-only, so writes and backups to it fail - the kernel "
                "does this after disk or filesystem errors; check dmesg"))
        if fs.size_bytes == 0:
            continue
        ratio = fs.avail_bytes / fs.size_bytes
        if ratio < th.almost_full_avail_ratio:
            yield Finding("filesystem_almost_full", fs.mountpoint, _fixed(
                f"{where} has {size(fs.avail_bytes)} ({ratio * 100:.0f}%) left of "
                f"{size(fs.size_bytes)}"))
        trend = trends.get(fs.mountpoint)
        left = trend.seconds_to_full if trend is not None else None
        if (trend is not None and left is not None and left <= th.filling_fast_horizon_seconds
                and ratio < th.filling_fast_max_avail_ratio):
            rate = -trend.slope_bytes_per_second * 3600
            yield Finding("filesystem_filling_fast", fs.mountpoint, _fixed(
                f"{where} will be full in about {span(left)} at the rate of the last "
                f"{span(trend.span_seconds)} ({size(fs.avail_bytes)} left, falling "
                f"{size(rate)}/h)"))


def _io_errors(report: pb.Report, th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for e in report.io_errors:
        if e.errors_total > 0:
            yield _io_finding(e, th)


def _io_finding(e: pb.DeviceIoErrors, th: Thresholds) -> Finding:
    """Its own function so each lambda closes over its own device's values."""
    last = seconds_of(e.last_error_at)
    message = f": {e.last_message}" if e.last_message else ""
    count = f"{e.errors_total} I/O error{'s' if e.errors_total != 1 else ''} on {e.device}"
    if last is None:
        return Finding("disk_io_errors", e.device,
                       _fixed(f"the kernel logged {count}{message} - check the disk and cabling"))
    return Finding("disk_io_errors", e.device, lambda now: (
        f"the kernel logged {count}, the last {span(now - last)} ago{message}"
        " - check the disk and cabling"), until=last + th.io_errors_window_seconds)
