"""The rules: one host's latest state → findings, each with a sentence an operator can act on.

Rules run when a host's record changes, never at scrape time. A finding that
depends on the clock (a backup turning stale, an agent falling silent, an I/O
error ageing out) carries the time window in which it is active, so a scrape
only compares numbers and the CLI writes "3 days ago" as of now.

A finding's text is a function of the time and the language: every sentence
is an English message with named placeholders, looked up in the reader's
language (dcguard.common.i18n), so the same findings read in English or
Vietnamese. A new reason's sentences are marked with lang.tr; i18n/update.sh
adds them to the catalog, and tests/test_i18n.py fails until they are translated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from dcguard.collector.events import StoredEvent
from dcguard.collector.risk.config import Thresholds
from dcguard.collector.risk.history import Trend
from dcguard.collector.store import AgentRecord
from dcguard.common.i18n import N_, Language, language
from dcguard.v1 import collector_pb2 as pb

__all__ = ["Finding", "evaluate", "one_line"]

Text = Callable[[float, Language], str]
# Whether a disk has findings at all is decided once, in the code's own language.
_ENGLISH = language("en")

_SMART_NAMES = {
    5: N_("reallocated sectors"),
    187: N_("reported uncorrectable errors"),
    188: N_("command timeouts"),
    197: N_("pending sectors"),
    198: N_("offline uncorrectable sectors"),
}
# NVMe critical warning bits (NVMe base spec, SMART / Health log byte 0).
_NVME_WARNINGS = (
    (0x01, N_("spare capacity below threshold")),
    (0x02, N_("temperature out of range")),
    (0x04, N_("reliability degraded")),
    (0x08, N_("media is read-only")),
    (0x10, N_("volatile memory backup failed")),
    (0x20, N_("persistent memory unreliable")),
)


@dataclass(frozen=True)
class Finding:
    """One reason, for one subject (a job, a disk, a mountpoint), active strictly between
    since and until: a backup is stale once its age is *over* the objective."""

    reason: str
    subject: str
    text: Text
    since: float = -math.inf
    until: float = math.inf

    def active(self, now: float) -> bool:
        return self.since < now < self.until

    @property
    def permanent(self) -> bool:
        """Active at every time, so it can be rendered once, off the scrape path."""
        return self.since == -math.inf and self.until == math.inf

    def sentence(self, now: float, lang: Language) -> str:
        return one_line(self.text(now, lang))


def one_line(text: str, limit: int = 600) -> str:
    """Agent-supplied text (a tool's error, a job name) on one line of bounded length, so
    it can neither break the CLI's layout nor fake a line of it."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def seconds_of(stamp: Timestamp) -> float | None:
    """A Timestamp in seconds, or None when unset (the proto's "never")."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.seconds + stamp.nanos / 1e9


def evaluate(
    record: AgentRecord,
    th: Thresholds,
    trends: Mapping[str, Trend],
    silent_after: float,
    sign: StoredEvent | None = None,
) -> list[Finding]:
    """Every finding for one host, active or pending, in reason order; sign is the host's
    newest ransomware sign (risk/signs.py), which no report carries for long."""
    findings = list(_agent(record, silent_after))
    report = record.latest
    if report is not None:
        for rule in (_backups, _coverage, _disks, _raid, _filesystems, _io_errors):
            findings.extend(rule(report, th, trends))
    if sign is not None:
        findings.append(_ransomware(sign, th))
    return findings


def _agent(record: AgentRecord, silent_after: float) -> Iterator[Finding]:
    last = record.last_seen
    yield Finding(
        "agent_silent",
        "agent",
        lambda now, lang: lang.tr(
            "no report from the agent for {age} (it reports every {interval}); its disks and "
            "backups are unknown - check that the server and dcguard-agent are running",
            age=lang.span(now - last),
            interval=lang.span(record.interval_seconds),
        ),
        since=last + silent_after,
    )


def _backups(report: pb.Report, th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for backup in report.backups:
        yield from _backup(backup, th)
    yield from _offsite(report.backups)


# Copies that survive the loss of this server.
OFF_HOST = frozenset(("other_host", "offline", "immutable"))
# Where a job's copy lies, when it is on this server: one whole sentence per place.
_PLACES = {
    "same_disk": N_("{job} is on the same disk as its data"),
    "other_disk": N_("{job} is on another disk of this server"),
    "this_host": N_("{job} is on this server"),
}


def _offsite(backups: Iterable[pb.Backup]) -> Iterator[Finding]:
    """No job whose place the agent knows keeps a copy off this server (3-2-1's "1")."""
    placed = [b for b in backups if b.copy_location]
    if not placed or any(b.copy_location in OFF_HOST for b in placed):
        return

    def text(_now: float, lang: Language) -> str:
        where = "; ".join(
            lang.tr(_PLACES.get(b.copy_location, _PLACES["this_host"]), job=_job(b, lang))
            for b in placed[:5]
        )
        more = (
            lang.trn(" (and {count} more)", " (and {count} more)", len(placed) - 5)
            if len(placed) > 5
            else ""
        )
        return lang.tr(
            "no backup of this server lies on another host: {where}{more} - one lost server "
            "(fire, theft, ransomware) takes its backups with it; add a copy on another "
            "server (a restic/borg repository over sftp:, rest:, s3:, or a network mount) or "
            "declare an offline or immutable copy with copy_location",
            where=where,
            more=more,
        )

    yield Finding("no_offsite_copy", "backups", text)


# What each kind of data location is, in the sentence naming it.
_LOCATION_KINDS = {
    "postgresql": N_("PostgreSQL data {path}"),
    "mysql": N_("MySQL/MariaDB data {path}"),
    "samba": N_("Samba share [{owner}] at {path}"),
    "web": N_("web root {path}"),
    "srv": N_("served data {path}"),
    "home": N_("home directory {path}"),
    "configured": N_("data directory {path}"),
}


def _coverage(report: pb.Report, _th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    """Each directory the agent found holding data that no backup job covers."""
    for location in report.data_coverage.locations:
        if location.backed_up:
            continue

        def text(_now: float, lang: Language, d: pb.DataLocation = location) -> str:
            what = _LOCATION_KINDS.get(d.kind, _LOCATION_KINDS["configured"])
            return lang.tr(
                "{what} is in no backup job - add it to a backup job's source, or name it "
                "in the database key of the job that dumps it",
                what=lang.tr(what, path=d.path, owner=d.owner),
            )

        yield Finding("data_not_backed_up", f"data {location.path}", text)


def _job(b: pb.Backup, lang: Language) -> str:
    return lang.tr("backup '{job}'", job=b.job)


def _backup(b: pb.Backup, th: Thresholds) -> Iterator[Finding]:
    subject = f"backup '{b.job}'"
    last_success = seconds_of(b.last_success)
    last_run = seconds_of(b.last_run)
    rpo = b.rpo_seconds if b.rpo_seconds > 0 else th.default_rpo_seconds
    # The repository could not be read and nothing was ever read from it: whether the
    # job ever succeeded is unknown, so one reason says so and "never succeeded" is not
    # claimed beside it (an unreachable sftp: repository once scored 90, like a failing disk).
    unknown = bool(b.error) and last_success is None and last_run is None
    if unknown:
        yield Finding(
            "backup_failed",
            subject,
            lambda _now, lang: lang.tr(
                "{job} could not be checked: {error}; whether it has ever succeeded is unknown "
                "- check that this server can reach and read where the backup is stored",
                job=_job(b, lang),
                error=b.error,
            ),
        )
    elif b.error:
        yield Finding(
            "backup_failed",
            subject,
            lambda _now, lang: lang.tr(
                "{job} could not be checked: {error}", job=_job(b, lang), error=b.error
            ),
        )
    if last_success is None and not unknown:
        failed_before = last_run is not None and bool(b.message)
        yield Finding(
            "backup_missing",
            subject,
            lambda _now, lang: (
                lang.tr(
                    "{job} has never succeeded; its last run failed: {message} - run it now and "
                    "check its schedule",
                    job=_job(b, lang),
                    message=b.message,
                )
                if failed_before
                else lang.tr(
                    "{job} has never succeeded - run it now and check its schedule",
                    job=_job(b, lang),
                )
            ),
        )
    elif last_success is not None:
        done = last_success
        yield Finding(
            "backup_stale",
            subject,
            lambda now, lang: lang.tr(
                "{job} last succeeded {age} ago; objective is {rpo}",
                job=_job(b, lang),
                age=lang.span(now - done),
                rpo=lang.span(rpo),
            ),
            since=done + rpo,
        )
    if last_run is not None and not b.last_run_success and last_success is not None:
        ran, message = last_run, b.message
        yield Finding(
            "backup_failed",
            subject,
            lambda now, lang: (
                lang.tr(
                    "{job} failed its last run {age} ago: {message}",
                    job=_job(b, lang),
                    age=lang.span(now - ran),
                    message=message,
                )
                if message
                else lang.tr(
                    "{job} failed its last run {age} ago",
                    job=_job(b, lang),
                    age=lang.span(now - ran),
                )
            ),
        )
    yield from _verification(b, subject)
    yield from _restore_test(b, subject)
    if b.same_device:
        yield Finding(
            "backup_same_device",
            subject,
            lambda _now, lang: lang.tr(
                "{job} is stored on the same physical disk as its data ({disks}); one disk "
                "failure loses both - move it to another disk or server",
                job=_job(b, lang),
                disks=", ".join(b.shared_disks) or lang.tr("the same disk"),
            ),
        )


def _verification(b: pb.Backup, subject: str) -> Iterator[Finding]:
    if b.verify_every_seconds <= 0:
        return
    every = b.verify_every_seconds
    verified = seconds_of(b.last_verified)
    if verified is None:
        yield Finding(
            "backup_unverified",
            subject,
            lambda _now, lang: lang.tr(
                "{job} has never been verified; a check is due every {every}",
                job=_job(b, lang),
                every=lang.span(every),
            ),
        )
        return
    if not b.last_verify_success:
        # The agent sends the check's error lines as the message when the run itself
        # has none to say (a successful last run).
        said = b.message if b.message and b.last_run_success else ""
        yield Finding(
            "backup_failed",
            subject,
            lambda now, lang: lang.tr(
                "{job} failed its last verification {age} ago{said}; the repository may be "
                "damaged - run the check by hand and repair or start a new repository",
                job=_job(b, lang),
                age=lang.span(now - verified),
                said=" (" + said + ")" if said else "",
            ),
        )
    yield Finding(
        "backup_unverified",
        subject,
        lambda now, lang: lang.tr(
            "{job} was last verified {age} ago; a check is due every {every}",
            job=_job(b, lang),
            age=lang.span(now - verified),
            every=lang.span(every),
        ),
        since=verified + every,
    )


# What to do about a failed restore test: a dump is made again, a repository is repaired.
_RESTORE_FIX = {
    "files": N_(
        "make a new dump now and check the backup script's log (disk full, killed, timed out)"
    ),
    "repository": N_(
        "run `restic check --read-data` / `borg check --verify-data` by hand, "
        "repair or start a new repository, and take a fresh backup"
    ),
}


def _restore_test(b: pb.Backup, subject: str) -> Iterator[Finding]:
    """The last restore drill failed: the backup exists but would not give the data back."""
    if not b.HasField("restore_test") or b.restore_test.success:
        return
    drill = b.restore_test
    tested = seconds_of(drill.time)
    said = drill.message or "; ".join(drill.mismatches)
    fix = _RESTORE_FIX["files" if b.kind == "files" else "repository"]

    def text(now: float, lang: Language) -> str:
        values = {
            "job": _job(b, lang),
            "what": said or lang.tr("no detail given"),
            "fix": lang.tr(fix),
        }
        if tested is None:
            return lang.tr(
                "{job} failed its restore test: {what} - the backup would not give "
                "this data back; {fix}",
                **values,
            )
        return lang.tr(
            "{job} failed its restore test {age} ago: {what} - the backup would "
            "not give this data back; {fix}",
            age=lang.span(now - tested),
            **values,
        )

    yield Finding("backup_unrestorable", subject, text)


def _disk_name(d: pb.Disk, lang: Language) -> str:
    serial = lang.tr("serial {serial}", serial=d.serial) if d.serial else ""
    extra = ", ".join(x for x in (d.model, serial) if x)
    if extra:
        return lang.tr("disk {device} ({details})", device=d.device, details=extra)
    return lang.tr("disk {device}", device=d.device)


def _asleep(d: pb.Disk, lang: Language) -> str:
    return lang.tr(" (values from before the disk went to standby)") if d.in_standby else ""


def _disks(report: pb.Report, th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for d in report.disks:
        if not d.smart_available:
            continue
        yield from _disk(d, th)


def _disk(d: pb.Disk, th: Thresholds) -> Iterator[Finding]:
    """Its own function so each lambda closes over its own disk."""
    if _failing(d, _ENGLISH):
        yield Finding(
            "disk_smart_failing",
            d.device,
            lambda _now, lang: lang.tr(
                "{disk} {problems}{asleep} - copy its data off and replace it",
                disk=_disk_name(d, lang),
                problems="; ".join(_failing(d, lang)),
                asleep=_asleep(d, lang),
            ),
        )
    if _degrading(d, th, _ENGLISH):
        yield Finding(
            "disk_smart_degrading",
            d.device,
            lambda _now, lang: lang.tr(
                "{disk} reports {counts}{asleep} - make sure its backups are current and plan "
                "a replacement",
                disk=_disk_name(d, lang),
                counts=", ".join(_degrading(d, th, lang)),
                asleep=_asleep(d, lang),
            ),
        )


def _failing(d: pb.Disk, lang: Language) -> list[str]:
    """What says the disk is failing now: overall health, attributes, NVMe warnings."""
    problems = [] if d.healthy else [lang.tr("fails its SMART health check")]
    problems += [
        lang.tr("has SMART {id} {name} below its threshold now", id=a.id, name=a.name)
        if a.name
        else lang.tr("has SMART {id} below its threshold now", id=a.id)
        for a in d.attributes
        if a.failing_now
    ]
    bits = [lang.tr(text) for bit, text in _NVME_WARNINGS if d.nvme_critical_warning & bit]
    if bits:
        problems.append(
            lang.tr("reports NVMe critical warning: {warnings}", warnings=", ".join(bits))
        )
    return problems


def _attribute_name(a: pb.SmartAttribute, lang: Language) -> str:
    if a.id in _SMART_NAMES:
        return lang.tr(_SMART_NAMES[a.id])
    return a.name or lang.tr("SMART {id}", id=a.id)


def _degrading(d: pb.Disk, th: Thresholds, lang: Language) -> list[str]:
    """Counts that predict failure (Backblaze's attributes, NVMe media errors and wear)."""
    counts = [
        lang.tr("{count} {name} (SMART {id})", count=a.raw, name=_attribute_name(a, lang), id=a.id)
        for a in d.attributes
        if a.id in th.smart_attributes and a.raw > th.smart_raw_tolerated
    ]
    if d.nvme_media_errors > 0:
        counts.append(
            lang.trn("{count} NVMe media error", "{count} NVMe media errors", d.nvme_media_errors)
        )
    if d.nvme_percentage_used >= th.nvme_percentage_used_limit:
        # The sign goes with the number: "% o" in a message reads as a printf directive.
        counts.append(
            lang.tr(
                "{percent} of its rated endurance used", percent=str(d.nvme_percentage_used) + "%"
            )
        )
    return counts


def _raid(report: pb.Report, _th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for a in report.raid_arrays:
        if a.degraded or a.disks_failed or a.disks_active < a.disks_total:
            yield _raid_finding(a)


def _raid_finding(a: pb.RaidArray) -> Finding:
    def text(_now: float, lang: Language) -> str:
        parts = [
            lang.tr("{active} of {total} disks active", active=a.disks_active, total=a.disks_total)
        ]
        if a.failed_members:
            parts.append(lang.tr("failed: {members}", members=", ".join(a.failed_members)))
        if a.sync_action:
            parts.append(
                lang.tr(
                    "{action} {percent} done",
                    action=a.sync_action,
                    percent=str(round(a.sync_progress_ratio * 100)) + "%",
                )
            )
        return lang.tr(
            "RAID array {array}{level} is degraded: {details} - one more disk failure can "
            "lose the array; replace the failed disk",
            array=a.name,
            level=" (" + a.level + ")" if a.level else "",
            details="; ".join(parts),
        )

    return Finding("raid_degraded", a.name, text)


def _fs_ignored(fs: pb.Filesystem, th: Thresholds) -> bool:
    return (
        bool(fs.error)
        or fs.mountpoint in th.ignore_mountpoints
        or (fs.fstype in th.readonly_expected_fstypes)
    )


def _where(fs: pb.Filesystem, lang: Language) -> str:
    if fs.device:
        return lang.tr(
            "filesystem {mountpoint} ({device})", mountpoint=fs.mountpoint, device=fs.device
        )
    return lang.tr("filesystem {mountpoint}", mountpoint=fs.mountpoint)


def _filesystems(
    report: pb.Report, th: Thresholds, trends: Mapping[str, Trend]
) -> Iterator[Finding]:
    for fs in report.filesystems:
        if not _fs_ignored(fs, th):
            yield from _filesystem(fs, th, trends.get(fs.mountpoint))


def _filesystem(fs: pb.Filesystem, th: Thresholds, trend: Trend | None) -> Iterator[Finding]:
    """Its own function so each lambda closes over its own filesystem."""
    if fs.readonly and fs.mountpoint not in th.readonly_expected_mountpoints:
        yield Finding(
            "filesystem_readonly",
            fs.mountpoint,
            lambda _now, lang: lang.tr(
                "{filesystem} is mounted read-only, so writes and backups to it fail - the kernel "
                "does this after disk or filesystem errors; check dmesg",
                filesystem=_where(fs, lang),
            ),
        )
    if fs.size_bytes == 0:
        return
    ratio = fs.avail_bytes / fs.size_bytes
    if ratio < th.almost_full_avail_ratio:
        yield Finding(
            "filesystem_almost_full",
            fs.mountpoint,
            lambda _now, lang: lang.tr(
                "{filesystem} has {avail} ({percent}%) left of {size}",
                filesystem=_where(fs, lang),
                avail=lang.size(fs.avail_bytes),
                percent=round(ratio * 100),
                size=lang.size(fs.size_bytes),
            ),
        )
    left = trend.seconds_to_full if trend is not None else None
    if (
        trend is not None
        and left is not None
        and left <= th.filling_fast_horizon_seconds
        and ratio < th.filling_fast_max_avail_ratio
    ):
        rate = -trend.slope_bytes_per_second * 3600
        window = trend.span_seconds
        yield Finding(
            "filesystem_filling_fast",
            fs.mountpoint,
            lambda _now, lang: lang.tr(
                "{filesystem} will be full in about {left} at the rate of the last {window} "
                "({avail} left, falling {rate}/h)",
                filesystem=_where(fs, lang),
                left=lang.span(left),
                window=lang.span(window),
                avail=lang.size(fs.avail_bytes),
                rate=lang.size(rate),
            ),
        )


def _io_errors(report: pb.Report, th: Thresholds, _t: Mapping[str, Trend]) -> Iterator[Finding]:
    for e in report.io_errors:
        if e.errors_total > 0:
            yield _io_finding(e, th)


def _io_finding(e: pb.DeviceIoErrors, th: Thresholds) -> Finding:
    """Its own function so each lambda closes over its own device's values."""
    last = seconds_of(e.last_error_at)

    def count(lang: Language) -> str:
        return lang.trn(
            "{count} I/O error on {device}",
            "{count} I/O errors on {device}",
            e.errors_total,
            device=e.device,
        )

    message = f": {e.last_message}" if e.last_message else ""

    if last is None:
        return Finding(
            "disk_io_errors",
            e.device,
            lambda _now, lang: lang.tr(
                "the kernel logged {errors}{message} - check the disk and cabling",
                errors=count(lang),
                message=message,
            ),
        )
    return Finding(
        "disk_io_errors",
        e.device,
        lambda now, lang: lang.tr(
            "the kernel logged {errors}, the last {age} ago{message} - check the disk and cabling",
            errors=count(lang),
            age=lang.span(now - last),
            message=message,
        ),
        until=last + th.io_errors_window_seconds,
    )


def _files_touched(sign: StoredEvent, key: str = "files_touched") -> int:
    """The agent's files_touched (or another count); 0 if none or not a count."""
    text = sign.details.get(key, "").strip()
    # isascii: str.isdigit() also accepts "²" (int() raises) and other scripts' digits.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else 0


# What each sign of the agent's watcher says is happening: (event, files touched) → words.
_SIGNS: dict[str, Callable[[StoredEvent, int, Language], str]] = {
    "canary": lambda e, n, lang: lang.tr(
        "files are being encrypted: the canary file {path} was changed", path=e.path or "?"
    ),
    "mass_rename": lambda e, n, lang: (
        lang.trn(
            "files are being encrypted: {count} file under {path} renamed to {extension}",
            "files are being encrypted: {count} files under {path} renamed to {extension}",
            n,
            path=e.path or "?",
            extension=e.details["extension"],
        )
        if e.details.get("extension")
        else lang.trn(
            "files are being encrypted: {count} file under {path} renamed",
            "files are being encrypted: {count} files under {path} renamed",
            n,
            path=e.path or "?",
        )
    ),
    "entropy_burst": lambda e, n, lang: lang.trn(
        "files are being encrypted: {count} file under {path} rewritten with "
        "random-looking content",
        "files are being encrypted: {count} files under {path} rewritten with "
        "random-looking content",
        n,
        path=e.path or "?",
    ),
    "header_mismatch": lambda e, n, lang: lang.trn(
        "files are being encrypted: {count} file under {path} no longer matches its type",
        "files are being encrypted: {count} files under {path} no longer match their type",
        n,
        path=e.path or "?",
    ),
    # The note's own directory count; agents before it was sent: files_touched.
    "ransom_note": lambda e, n, lang: lang.trn(
        "files are being encrypted: the ransom note {note} appeared in {count} directory "
        "under {path}",
        "files are being encrypted: the ransom note {note} appeared in {count} directories "
        "under {path}",
        _files_touched(e, "directories") or n,
        note=e.details.get("note_name") or "?",
        path=e.path or "?",
    ),
    "mass_deletion": lambda e, n, lang: lang.trn(
        "files are being wiped: {count} file under {path} deleted",
        "files are being wiped: {count} files under {path} deleted",
        n,
        path=e.path or "?",
    ),
}


def _what(sign: StoredEvent, lang: Language) -> str:
    """What the sign says is happening, with its path and how many files."""
    name = sign.details.get("sign") or sign.type
    words = _SIGNS.get(name)
    if words is not None:
        return words(sign, _files_touched(sign), lang)
    return lang.trn(
        "ransomware sign {sign}: {count} file under {path}",
        "ransomware sign {sign}: {count} files under {path}",
        _files_touched(sign),
        sign=name,
        path=sign.path or "?",
    )


def _ransomware(sign: StoredEvent, th: Thresholds) -> Finding:
    """Active from the sign on, for ransomware_window after its time."""

    def text(now: float, lang: Language) -> str:
        return lang.tr(
            "{what}, {age} ago - isolate the server from the network now, but do not power "
            "it off or reboot it (its memory is evidence and may hold the keys), and cut its "
            "access to its backups; see the ransomware runbook",
            what=_what(sign, lang),
            age=lang.span(max(0.0, now - sign.time)),
        )

    return Finding(
        "ransomware_suspected", "ransomware", text, until=sign.time + th.ransomware_window_seconds
    )
