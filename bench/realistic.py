"""Realistic reports for benchmarks: what a typical department server sends.

10 filesystems, 4 disks with the five SMART attributes that matter, 3 backup
jobs and a couple of security events, the size the scale targets assume.
"""

from __future__ import annotations

import time

from dcguard.v1 import collector_pb2 as pb

SMART_IDS = (5, 187, 188, 197, 198)


def agent(index: int, interval: float = 15.0) -> pb.AgentInfo:
    return pb.AgentInfo(host=f"srv{index:05d}", department=f"dept{index % 40:02d}",
                        agent_version="0.1.0", os="Debian GNU/Linux 12 (bookworm)",
                        kernel="6.1.0-18-amd64", interval_seconds=interval,
                        instance_id=f"bench-{index}")


def report(sequence: int, now: float | None = None, events: int = 2) -> pb.Report:
    now = time.time() if now is None else now
    r = pb.Report(sequence=sequence, spool_dropped_total=0)
    r.collected_at.FromNanoseconds(int(now * 1e9))
    for name in ("host", "filesystem", "smart", "mdraid", "backup", "auth_log"):
        r.sources.add(name=name, success=True, duration_seconds=0.002)
    r.host.CopyFrom(pb.HostHealth(
        cpu_utilization_ratio=0.12, cpu_count=4, memory_total_bytes=16 << 30,
        memory_available_bytes=9 << 30, swap_total_bytes=2 << 30, swap_used_bytes=1 << 20,
        load1=0.4, load5=0.3, load15=0.2, boot_time_seconds=now - 86400 * 30, processes=180))
    for i in range(10):
        r.filesystems.add(mountpoint="/" if i == 0 else f"/srv/data{i}",
                          device=f"/dev/sd{chr(97 + i % 4)}{i}", fstype="ext4",
                          size_bytes=500 << 30, avail_bytes=(200 + i) << 30,
                          free_bytes=(220 + i) << 30, files=30_000_000, files_free=29_000_000)
    for i in range(4):
        disk = r.disks.add(device=f"/dev/sd{chr(97 + i)}", model="WDC WD40EFRX-68N32N0",
                           serial=f"WD-WCC7K{i}XXXXX", protocol="ATA", smart_available=True,
                           healthy=True, temperature_celsius=34, power_on_hours=21000)
        disk.read_at.FromNanoseconds(int(now * 1e9))
        for attr in SMART_IDS:
            disk.attributes.add(id=attr, name=f"attr{attr}", raw=0, value=100, worst=100,
                                threshold=10)
    for job in ("mysql-nightly", "files-daily", "etc-weekly"):
        b = r.backups.add(job=job, kind="restic", rpo_seconds=26 * 3600, last_run_success=True,
                          size_bytes=12 << 30, source_configured=True,
                          verify_every_seconds=7 * 86400, last_verify_success=True)
        b.last_success.FromNanoseconds(int((now - 3600) * 1e9))
        b.last_run.FromNanoseconds(int((now - 3600) * 1e9))
        b.last_verified.FromNanoseconds(int((now - 86400) * 1e9))
    for i in range(events):
        e = r.events.add(type="ssh_login_failed", severity=pb.SEVERITY_LOW, technique="T1110",
                         user="admin", source_address=f"203.0.113.{i + 1}", process="sshd",
                         source="auth_log",
                         raw="Failed password for admin from 203.0.113.9 port 52100 ssh2")
        e.time.FromNanoseconds(int(now * 1e9))
    return r
