"""Reports with storage and backup parts, built as an agent builds them, and a way to submit them.

The collector receives protobuf, not smartctl output, so the disks here carry
the numbers copied from real smartctl captures (in the shared corpus), so the
rules meet what real failing disks report:
- REALLOCATED_304: smartctl-sata-hdd-passed-reallocated304-st3500418as-v7.3.json, from
  prometheus-community/smartctl_exporter testdata/ST3500418AS_12.json
  @ c0fe431c02002599a00f87cfd62859c52d14f0c8
- FAILING_HDS: smartctl-sata-hdd-FAILING-hds721050dle630-usbjmicron-v7.1.json, from
  AnalogJ/scrutiny webapp/backend/pkg/models/testdata/smart-fail2.json
  @ 92d54df0224524c667dc5ec4cdf5cfbf1cc532f2
- nvme_disk(warning=16): smartctl-nvme-FAILING-critical-warning16-samsung-mzwll3t2hajq-v7.3.json,
  from smartctl_exporter testdata/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json @ c0fe431c
- nvme_disk(media_errors=7): smartctl-nvme-media-errors7-samsung970evo-v7.0.json, from
  AnalogJ/scrutiny webapp/backend/pkg/models/testdata/smart-nvme-failed.json @ e7801619
"""

from __future__ import annotations

import time
import uuid

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from dcguard.collector.store import AgentRecord
from dcguard.v1 import collector_pb2 as pb
from tests.submit import agent_info, make_report, submit

GIB = 1024**3
# Attributes as (id, name, raw, value, threshold, failing_now).
HEALTHY_ATA = (
    (5, "Reallocated_Sector_Ct", 0, 200, 140, False),
    (187, "Reported_Uncorrect", 0, 100, 0, False),
    (188, "Command_Timeout", 0, 100, 0, False),
    (197, "Current_Pending_Sector", 0, 200, 0, False),
    (198, "Offline_Uncorrectable", 0, 100, 0, False),
)
# smartctl-sata-hdd-passed-reallocated304-st3500418as-v7.3.json: passes, 304 reallocated.
REALLOCATED_304 = (
    (5, "Reallocated_Sector_Ct", 304, 93, 36, False),
    (187, "Reported_Uncorrect", 0, 100, 0, False),
    (188, "Command_Timeout", 0, 100, 0, False),
    (197, "Current_Pending_Sector", 0, 100, 0, False),
    (198, "Offline_Uncorrectable", 0, 100, 0, False),
)
# smartctl-sata-hdd-FAILING-hds721050dle630-usbjmicron-v7.1.json: fails, attribute 5 "now".
FAILING_HDS = (
    (5, "Reallocated_Sector_Ct", 1975, 1, 5, True),
    (197, "Current_Pending_Sector", 8, 100, 0, False),
    (198, "Offline_Uncorrectable", 0, 100, 0, False),
)


def stamp(seconds: float) -> Timestamp:
    return Timestamp(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def ata_disk(
    device: str,
    model: str,
    serial: str,
    attributes: tuple = HEALTHY_ATA,
    *,
    healthy: bool = True,
    standby: bool = False,
) -> pb.Disk:
    return pb.Disk(
        device=device,
        model=model,
        serial=serial,
        protocol="ATA",
        smart_available=True,
        healthy=healthy,
        in_standby=standby,
        read_at=stamp(time.time()),
        temperature_celsius=33,
        power_on_hours=12000,
        attributes=[
            pb.SmartAttribute(id=i, name=n, raw=r, value=v, worst=v, threshold=t, failing_now=f)
            for i, n, r, v, t, f in attributes
        ],
    )


def nvme_disk(
    device: str, *, warning: int = 0, media_errors: int = 0, used: int = 3, healthy: bool = True
) -> pb.Disk:
    return pb.Disk(
        device=device,
        model="SAMSUNG MZWLL3T2HAJQ-00005",
        serial="S3XXNX0K",
        protocol="NVMe",
        smart_available=True,
        healthy=healthy,
        read_at=stamp(time.time()),
        temperature_celsius=40,
        power_on_hours=30000,
        nvme_critical_warning=warning,
        nvme_media_errors=media_errors,
        nvme_percentage_used=used,
    )


def raid(
    name: str = "md0",
    *,
    active: int = 2,
    total: int = 2,
    failed: tuple[str, ...] = (),
    action: str = "",
    progress: float = 0.0,
) -> pb.RaidArray:
    return pb.RaidArray(
        name=name,
        level="raid1",
        state="active",
        disks_active=active,
        disks_total=total,
        disks_failed=len(failed),
        degraded=active < total,
        sync_action=action,
        sync_progress_ratio=progress,
        members=["sda1", "sdb1"],
        failed_members=list(failed),
    )


def backup(
    job: str,
    *,
    rpo: float = 26 * 3600,
    last_success: float | None = None,
    last_run: float | None = None,
    ok: bool = True,
    size: int = 5 * GIB,
    same_device: bool = False,
    verify_every: float = 0,
    last_verified: float | None = None,
    verify_ok: bool = True,
    error: str = "",
    message: str = "",
    kind: str = "restic",
) -> pb.Backup:
    b = pb.Backup(
        job=job,
        kind=kind,
        rpo_seconds=rpo,
        last_run_success=ok,
        size_bytes=size,
        same_device=same_device,
        shared_disks=["/dev/sda"] if same_device else [],
        source_configured=True,
        verify_every_seconds=verify_every,
        last_verify_success=verify_ok,
        error=error,
        message=message,
    )
    if last_success is not None:
        b.last_success.CopyFrom(stamp(last_success))
    if last_run is not None or last_success is not None:
        ran = last_run if last_run is not None else last_success
        assert ran is not None
        b.last_run.CopyFrom(stamp(ran))
    if last_verified is not None:
        b.last_verified.CopyFrom(stamp(last_verified))
    return b


def fs(
    mountpoint: str,
    *,
    size: int = 100 * GIB,
    avail: int = 60 * GIB,
    readonly: bool = False,
    fstype: str = "ext4",
    device: str = "/dev/sda2",
) -> pb.Filesystem:
    return pb.Filesystem(
        mountpoint=mountpoint,
        device=device,
        fstype=fstype,
        size_bytes=size,
        avail_bytes=avail,
        free_bytes=avail,
        readonly=readonly,
    )


def io_errors(device: str, count: int, last: float | None) -> pb.DeviceIoErrors:
    e = pb.DeviceIoErrors(
        device=device,
        errors_total=count,
        last_message=f"I/O error, dev {device}, sector 1234 op 0x0:(READ)",
    )
    if last is not None:
        e.last_error_at.CopyFrom(stamp(last))
    return e


def report(sequence: int = 1, collected_at: float | None = None, **parts: object) -> pb.Report:
    """make_report with a default sequence: Submitter numbers reports when it sends them."""
    return make_report(sequence, collected_at, **parts)


def record(
    latest: pb.Report | None,
    *,
    host: str = "db01",
    department: str = "so-tu-phap",
    last_seen: float | None = None,
    interval: float = 15.0,
) -> AgentRecord:
    seen = time.time() if last_seen is None else last_seen
    return AgentRecord(
        host=host,
        department=department,
        agent_version="0.1.0",
        os="linux",
        kernel="6.1",
        interval_seconds=interval,
        instance_id="i",
        first_seen=seen,
        last_seen=seen,
        max_sequence=1,
        reports_stored=1,
        reports_lost=0,
        latest=latest,
    )


class Submitter:
    """One host's agent over one channel: numbers reports in order, as an agent's sender does."""

    def __init__(
        self, address: str, host: str, department: str = "so-tu-phap", interval: float = 15.0
    ) -> None:
        self.address = address
        self.agent = agent_info(host, department, uuid.uuid4().hex, interval)
        self.channel = grpc.insecure_channel(address)
        self.sequence = 0

    def send(self, *reports: pb.Report) -> int:
        """Number the reports after the previous ones, submit them, return the ack."""
        for r in reports:
            self.sequence += 1
            r.sequence = self.sequence
        response = submit(self.address, list(reports), self.agent, self.channel)
        return int(response.acked_sequence)

    def close(self) -> None:
        self.channel.close()
