"""Disk, RAID, I/O-error and backup metrics through a real collector, checked by promtool."""

from __future__ import annotations

import math
import shutil
import subprocess
import time

import grpc
import pytest

from tests.storage_reports import (
    FAILING_HDS,
    GIB,
    REALLOCATED_304,
    Submitter,
    ata_disk,
    backup,
    fs,
    io_errors,
    nvme_disk,
    raid,
    report,
)
from tests.support import metric

DB01 = {"host": "db01", "department": "so-tu-phap"}


def full_report(now: float):
    return report(
        collected_at=now,
        filesystems=[fs("/", avail=40 * GIB), fs("/var", avail=5 * GIB)],
        disks=[
            ata_disk("/dev/sda", "ST3500418AS", "5VM1AAAA", REALLOCATED_304),
            ata_disk(
                "/dev/sdc",
                "Hitachi HDS721050DLE630",
                "MSK423Y20S3HBC",
                FAILING_HDS,
                healthy=False,
                standby=True,
            ),
            nvme_disk("/dev/nvme0", media_errors=7, used=12),
        ],
        raid_arrays=[
            raid("md0", active=1, failed=("sdb1",), action="recovery", progress=0.25),
            raid("md1"),
        ],
        io_errors=[io_errors("sdb", 12, now - 600)],
        backups=[
            backup(
                "mysql-nightly",
                last_success=now - 3 * 86400,
                verify_every=86400,
                last_verified=now - 3600,
            ),
            backup("etc", kind="files", same_device=True, last_success=now - 600),
            backup("pg-dump", kind="push", last_run=now - 60, ok=False, message="pg_dump failed"),
        ],
    )


@pytest.fixture
def db01(collector):
    submitter = Submitter(collector.grpc_address, "db01")
    yield submitter
    submitter.close()


def test_every_storage_and_backup_family_is_exported_with_the_reported_values(collector, db01):
    now = time.time()
    assert db01.send(full_report(now)) == 1
    s = collector.metrics()

    assert (
        metric(
            s,
            "dcguard_disk_smart_healthy",
            device="/dev/sda",
            model="ST3500418AS",
            serial="5VM1AAAA",
            **DB01,
        )
        == 1
    )
    assert metric(s, "dcguard_disk_smart_healthy", device="/dev/sdc", **DB01) == 0
    for attribute, raw in (("5", 304), ("187", 0), ("188", 0), ("197", 0), ("198", 0)):
        assert (
            metric(
                s,
                "dcguard_disk_smart_attribute_raw",
                device="/dev/sda",
                attribute=attribute,
                **DB01,
            )
            == raw
        )
    assert (
        metric(s, "dcguard_disk_smart_attribute_failing", device="/dev/sdc", attribute="5", **DB01)
        == 1
    )
    assert metric(s, "dcguard_disk_standby", device="/dev/sdc", **DB01) == 1
    assert metric(s, "dcguard_disk_temperature_celsius", device="/dev/sda", **DB01) == 33
    assert metric(s, "dcguard_disk_power_on_seconds", device="/dev/sda", **DB01) == 12000 * 3600
    assert metric(s, "dcguard_disk_nvme_media_errors_total", device="/dev/nvme0", **DB01) == 7
    assert metric(
        s, "dcguard_disk_nvme_percentage_used_ratio", device="/dev/nvme0", **DB01
    ) == pytest.approx(0.12)
    assert metric(s, "dcguard_disk_nvme_critical_warning", device="/dev/nvme0", **DB01) == 0
    # NVMe fields are not invented for ATA disks.
    assert metric(s, "dcguard_disk_nvme_critical_warning", device="/dev/sda", **DB01) is None

    assert metric(s, "dcguard_raid_degraded", array="md0", **DB01) == 1
    assert metric(s, "dcguard_raid_disks_active", array="md0", **DB01) == 1
    assert metric(s, "dcguard_raid_disks_total", array="md0", **DB01) == 2
    assert metric(s, "dcguard_raid_disks_failed", array="md0", **DB01) == 1
    assert (
        metric(s, "dcguard_raid_sync_progress_ratio", array="md0", action="recovery", **DB01)
        == 0.25
    )
    assert metric(s, "dcguard_raid_degraded", array="md1", **DB01) == 0
    assert metric(s, "dcguard_raid_info", array="md1", level="raid1", **DB01) == 1

    assert metric(s, "dcguard_disk_io_errors_total", device="sdb", **DB01) == 12
    assert metric(
        s, "dcguard_disk_io_last_error_timestamp_seconds", device="sdb", **DB01
    ) == pytest.approx(now - 600, abs=1)

    job = {"job": "mysql-nightly", **DB01}
    assert metric(s, "dcguard_backup_last_success_timestamp_seconds", **job) == pytest.approx(
        now - 3 * 86400, abs=1
    )
    assert metric(s, "dcguard_backup_last_run_success", **job) == 1
    assert metric(s, "dcguard_backup_size_bytes", **job) == 5 * GIB
    assert metric(s, "dcguard_backup_rpo_seconds", **job) == 26 * 3600
    assert metric(s, "dcguard_backup_same_device", **job) == 0
    assert metric(s, "dcguard_backup_verify_interval_seconds", **job) == 86400
    assert metric(s, "dcguard_backup_last_verify_success", **job) == 1
    assert metric(s, "dcguard_backup_same_device", job="etc", **DB01) == 1
    assert metric(s, "dcguard_backup_info", job="etc", kind="files", **DB01) == 1
    # Never succeeded: no 1970 timestamp, a failed last run.
    assert metric(s, "dcguard_backup_last_success_timestamp_seconds", job="pg-dump", **DB01) is None
    assert metric(s, "dcguard_backup_last_run_success", job="pg-dump", **DB01) == 0

    assert metric(s, "dcguard_data_loss_risk_score", **DB01) == 100
    for reason in (
        "backup_stale",
        "backup_missing",
        "backup_same_device",
        "disk_smart_failing",
        "disk_smart_degrading",
        "raid_degraded",
        "disk_io_errors",
        "filesystem_almost_full",
    ):
        assert metric(s, "dcguard_data_loss_risk", reason=reason, **DB01) == 1, reason
    assert metric(s, "dcguard_data_loss_risk", reason="filesystem_readonly", **DB01) == 0


def test_promtool_finds_the_page_with_every_new_family_clean(collector, db01):
    assert shutil.which("promtool"), "promtool missing: apt-get install prometheus (run.sh does)"
    db01.send(full_report(time.time()))
    text = collector.metrics_text()
    for family in (
        "dcguard_disk_smart_healthy",
        "dcguard_disk_smart_attribute_raw",
        "dcguard_raid_degraded",
        "dcguard_raid_disks_active",
        "dcguard_raid_disks_total",
        "dcguard_backup_last_success_timestamp_seconds",
        "dcguard_backup_last_run_success",
        "dcguard_backup_size_bytes",
        "dcguard_backup_rpo_seconds",
        "dcguard_backup_same_device",
        "dcguard_data_loss_risk_score",
        "dcguard_data_loss_risk",
        "dcguard_disk_io_errors_total",
        "dcguard_raid_sync_progress_ratio",
        "dcguard_backup_last_verified_timestamp_seconds",
    ):
        assert f"\n{family}{{" in text, family
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def _bad_reports(now: float):
    dup_disk = report(collected_at=now, disks=[nvme_disk("/dev/nvme0"), nvme_disk("/dev/nvme0")])
    dup_job = report(collected_at=now, backups=[backup("a"), backup("a")])
    nan_rpo = report(collected_at=now, backups=[backup("a", rpo=math.nan)])
    inf_verify = report(collected_at=now, backups=[backup("a", verify_every=math.inf)])
    no_name = report(collected_at=now, raid_arrays=[raid("")])
    long_model = report(collected_at=now, disks=[ata_disk("/dev/sda", "M" * 5000, "s")])
    many = report(collected_at=now, io_errors=[io_errors(f"sd{i}", 1, now) for i in range(300)])
    return [
        ("duplicate disk", dup_disk, grpc.StatusCode.INVALID_ARGUMENT, "invalid_report"),
        ("duplicate job", dup_job, grpc.StatusCode.INVALID_ARGUMENT, "invalid_report"),
        ("NaN rpo", nan_rpo, grpc.StatusCode.INVALID_ARGUMENT, "invalid_report"),
        ("infinite verify", inf_verify, grpc.StatusCode.INVALID_ARGUMENT, "invalid_report"),
        ("nameless array", no_name, grpc.StatusCode.INVALID_ARGUMENT, "invalid_report"),
        ("long model", long_model, grpc.StatusCode.INVALID_ARGUMENT, "too_large"),
        ("300 devices", many, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large"),
    ]


def test_malformed_storage_parts_are_refused_counted_and_change_nothing(collector, db01):
    now = time.time()
    db01.send(full_report(now))
    before = collector.metrics()
    for what, bad, code, reason in _bad_reports(now):
        rejected = (
            metric(collector.metrics(), "dcguard_collector_reports_rejected_total", reason=reason)
            or 0
        )
        with pytest.raises(grpc.RpcError) as info:
            db01.send(bad)
        assert info.value.code() == code, what
        db01.sequence -= 1  # the refused report was not stored; reuse its number
        after = collector.metrics()
        assert (
            metric(after, "dcguard_collector_reports_rejected_total", reason=reason) == rejected + 1
        ), what
    after = collector.metrics()
    host_series = {
        k: v for k, v in before.items() if ("host", "db01") in k[1] and k[0] != "dcguard_agent_up"
    }
    assert host_series
    for key, value in host_series.items():
        assert after.get(key) == value, key
    assert collector.running


def test_extreme_sizes_and_times_are_stored_and_the_collector_keeps_working(collector, db01):
    """uint64 sizes beyond SQLite's signed integers, timestamps far in the past."""
    huge = 2**64 - 1
    now = time.time()
    extreme = report(
        collected_at=now,
        filesystems=[fs("/", size=huge, avail=huge)],
        backups=[backup("old", last_success=1.0, size=huge, rpo=1e12)],
        io_errors=[io_errors("sdz", huge, 1.0)],
    )
    assert db01.send(extreme) == 1
    assert db01.send(report(collected_at=now + 400, filesystems=[fs("/", avail=1)])) == 2
    s = collector.metrics()
    assert metric(s, "dcguard_agent_reports_stored_total", **DB01) == 2
    assert metric(s, "dcguard_filesystem_avail_bytes", mountpoint="/", **DB01) == 1
    assert metric(s, "dcguard_data_loss_risk", reason="filesystem_almost_full", **DB01) == 1
