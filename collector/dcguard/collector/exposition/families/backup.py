"""Backup jobs: last success, last run, size, objective, verification, same-device.

Timestamps of things that never happened (a job that never succeeded, was
never verified) are left out rather than written as 0, so a dashboard never
shows 1970; the risk reasons backup_missing and backup_unverified say it.
"""

from __future__ import annotations

from collections.abc import Hashable

from dcguard.collector.exposition.families import AddSample, serialized
from dcguard.collector.exposition.text import Family
from dcguard.collector.store import AgentRecord
from dcguard.v1 import collector_pb2 as pb

__all__ = ["BackupGroup"]

_G = "gauge"


class BackupGroup:
    families: tuple[Family, ...] = (
        Family(
            "dcguard_backup_last_success_timestamp_seconds",
            _G,
            "Time of the job's last successful run (absent if it never succeeded).",
        ),
        Family("dcguard_backup_last_run_timestamp_seconds", _G, "Time of the job's last run."),
        Family("dcguard_backup_last_run_success", _G, "1 if the job's last run succeeded, else 0."),
        Family("dcguard_backup_size_bytes", _G, "Size of the job's latest backup."),
        Family("dcguard_backup_rpo_seconds", _G, "The job's recovery point objective."),
        Family(
            "dcguard_backup_same_device",
            _G,
            "1 if the backup lies on the same physical device as its source.",
        ),
        Family(
            "dcguard_backup_last_verified_timestamp_seconds",
            _G,
            "Time the backup was last verified (restic/borg check).",
        ),
        Family(
            "dcguard_backup_last_verify_success",
            _G,
            "1 if the last verification succeeded, else 0.",
        ),
        Family(
            "dcguard_backup_verify_interval_seconds",
            _G,
            "How often the backup should be verified (absent: not scheduled).",
        ),
        Family(
            "dcguard_backup_check_error",
            _G,
            "1 if the agent could not check the job (tool missing, repository unreadable).",
        ),
        Family("dcguard_backup_info", _G, "The job's kind; always 1."),
        Family(
            "dcguard_backup_restore_test_timestamp_seconds",
            _G,
            "Time the job's last restore drill ended (absent if none ran).",
        ),
        Family(
            "dcguard_backup_restore_test_success",
            _G,
            "1 if the last restore drill restored a sample that matched its source, else 0.",
        ),
        Family(
            "dcguard_backup_restore_test_last_success_timestamp_seconds",
            _G,
            "Time of the job's last successful restore drill (absent if none succeeded).",
        ),
        Family(
            "dcguard_backup_restore_test_bytes",
            _G,
            "Bytes restored and read back by the last restore drill.",
        ),
        Family(
            "dcguard_backup_restore_test_files",
            _G,
            "Restored files the last restore drill compared with an unchanged source.",
        ),
        Family(
            "dcguard_backup_copy_location",
            _G,
            "1 for where the job's copy lives: same_disk, other_disk, this_host, "
            "other_host, offline, immutable (absent: unknown).",
        ),
        Family(
            "dcguard_backup_restore_test_interval_seconds",
            _G,
            "How often the job's restore drill runs (absent: drills off).",
        ),
    )
    live_families: tuple[Family, ...] = ()

    def key(self, record: AgentRecord) -> Hashable | None:
        # Jobs run daily or so: most reports repeat the last one's bytes.
        return () if record.latest is None else serialized(record.latest.backups)

    def render(self, record: AgentRecord, add: AddSample) -> None:
        if record.latest is None:
            return
        seen: set[str] = set()
        for b in record.latest.backups:
            if b.job in seen:
                continue
            seen.add(b.job)
            job = (("job", b.job),)
            add("dcguard_backup_info", (*job, ("kind", b.kind)), 1)
            add("dcguard_backup_rpo_seconds", job, b.rpo_seconds)
            add("dcguard_backup_same_device", job, b.same_device)
            add("dcguard_backup_check_error", job, bool(b.error))
            if b.HasField("last_success"):
                add(
                    "dcguard_backup_last_success_timestamp_seconds",
                    job,
                    b.last_success.seconds + b.last_success.nanos / 1e9,
                )
            if b.HasField("last_run"):
                add(
                    "dcguard_backup_last_run_timestamp_seconds",
                    job,
                    b.last_run.seconds + b.last_run.nanos / 1e9,
                )
                add("dcguard_backup_last_run_success", job, b.last_run_success)
            if b.HasField("last_success") or b.size_bytes:
                add("dcguard_backup_size_bytes", job, b.size_bytes)
            if b.verify_every_seconds > 0:
                add("dcguard_backup_verify_interval_seconds", job, b.verify_every_seconds)
            if b.HasField("last_verified"):
                add(
                    "dcguard_backup_last_verified_timestamp_seconds",
                    job,
                    b.last_verified.seconds + b.last_verified.nanos / 1e9,
                )
                add("dcguard_backup_last_verify_success", job, b.last_verify_success)
            if b.copy_location:
                add("dcguard_backup_copy_location", (*job, ("location", b.copy_location)), 1)
            _restore_test(b, job, add)

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        pass


def _restore_test(b: pb.Backup, job: tuple[tuple[str, str], ...], add: AddSample) -> None:
    if b.restore_test_every_seconds > 0:
        add("dcguard_backup_restore_test_interval_seconds", job, b.restore_test_every_seconds)
    if not b.HasField("restore_test"):
        return
    drill = b.restore_test
    add(
        "dcguard_backup_restore_test_timestamp_seconds",
        job,
        drill.time.seconds + drill.time.nanos / 1e9,
    )
    add("dcguard_backup_restore_test_success", job, drill.success)
    add("dcguard_backup_restore_test_bytes", job, drill.bytes)
    add("dcguard_backup_restore_test_files", job, drill.files)
    if drill.HasField("last_success"):
        add(
            "dcguard_backup_restore_test_last_success_timestamp_seconds",
            job,
            drill.last_success.seconds + drill.last_success.nanos / 1e9,
        )
