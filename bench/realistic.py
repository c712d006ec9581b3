"""Realistic reports for benchmarks: what a typical department server sends.

10 filesystems, 4 disks with the five SMART attributes that matter, 3 backup
jobs and a couple of security events, the size the scale targets assume.
"""

from __future__ import annotations

import time

from dcguard.v1 import collector_pb2 as pb

SMART_IDS = (5, 187, 188, 197, 198)


def agent(index: int, interval: float = 15.0) -> pb.AgentInfo:
    return pb.AgentInfo(
        host=f"srv{index:05d}",
        department=f"dept{index % 40:02d}",
        agent_version="0.1.0",
        os="Debian GNU/Linux 12 (bookworm)",
        kernel="6.1.0-18-amd64",
        interval_seconds=interval,
        instance_id=f"bench-{index}",
    )


def report(sequence: int, now: float | None = None, events: int = 2) -> pb.Report:
    now = time.time() if now is None else now
    r = pb.Report(sequence=sequence, spool_dropped_total=0)
    r.collected_at.FromNanoseconds(int(now * 1e9))
    for name in ("host", "filesystem", "smart", "mdraid", "backup", "auth_log"):
        r.sources.add(name=name, success=True, duration_seconds=0.002)
    r.host.CopyFrom(
        pb.HostHealth(
            cpu_utilization_ratio=0.12,
            cpu_count=4,
            memory_total_bytes=16 << 30,
            memory_available_bytes=9 << 30,
            swap_total_bytes=2 << 30,
            swap_used_bytes=1 << 20,
            load1=0.4,
            load5=0.3,
            load15=0.2,
            boot_time_seconds=now - 86400 * 30,
            processes=180,
        )
    )
    for i in range(10):
        r.filesystems.add(
            mountpoint="/" if i == 0 else f"/srv/data{i}",
            device=f"/dev/sd{chr(97 + i % 4)}{i}",
            fstype="ext4",
            size_bytes=500 << 30,
            avail_bytes=(200 + i) << 30,
            free_bytes=(220 + i) << 30,
            files=30_000_000,
            files_free=29_000_000,
        )
    for i in range(4):
        disk = r.disks.add(
            device=f"/dev/sd{chr(97 + i)}",
            model="WDC WD40EFRX-68N32N0",
            serial=f"WD-WCC7K{i}XXXXX",
            protocol="ATA",
            smart_available=True,
            healthy=True,
            temperature_celsius=34,
            power_on_hours=21000,
        )
        disk.read_at.FromNanoseconds(int(now * 1e9))
        for attr in SMART_IDS:
            disk.attributes.add(
                id=attr, name=f"attr{attr}", raw=0, value=100, worst=100, threshold=10
            )
    for job in ("mysql-nightly", "files-daily", "etc-weekly"):
        b = r.backups.add(
            job=job,
            kind="restic",
            rpo_seconds=26 * 3600,
            last_run_success=True,
            size_bytes=12 << 30,
            source_configured=True,
            verify_every_seconds=7 * 86400,
            last_verify_success=True,
        )
        b.last_success.FromNanoseconds(int((now - 3600) * 1e9))
        b.last_run.FromNanoseconds(int((now - 3600) * 1e9))
        b.last_verified.FromNanoseconds(int((now - 86400) * 1e9))
    for i in range(events):
        e = r.events.add(
            type="ssh_login_failed",
            severity=pb.SEVERITY_LOW,
            technique="T1110",
            user="admin",
            source_address=f"203.0.113.{i + 1}",
            process="sshd",
            source="auth_log",
            raw="Failed password for admin from 203.0.113.9 port 52100 ssh2",
        )
        e.time.FromNanoseconds(int(now * 1e9))
    return r


class Cycle:
    """Re-stamps one template request per call, so a generator need not build reports.

    Every simulated agent still sends its own, changing numbers: free space
    shrinks by an agent-specific amount each cycle, CPU, memory and load move,
    timestamps are now. What a real agent refreshes less often moves at its
    real pace: SMART is read every 10 minutes (read_at, temperature), backups
    run daily and are verified weekly. Serializing one re-stamped template
    costs a few microseconds; building a report from scratch costs hundreds.
    """

    SMART_EVERY = 600
    DAY = 86400

    def __init__(self, agents: list[pb.AgentInfo], events: int = 2) -> None:
        self._agents = agents
        self._request = pb.SubmitRequest()
        self._report = self._request.reports.add()
        self._report.CopyFrom(report(1, events=events))
        self._avail = [fs.avail_bytes for fs in self._report.filesystems]

    def request(self, index: int, sequence: int, now: float) -> bytes:
        """Agent index's report number sequence, as collected at now, serialized."""
        self._request.agent.CopyFrom(self._agents[index])
        r = self._report
        r.sequence = sequence
        ns = int(now * 1e9)
        r.collected_at.FromNanoseconds(ns)
        wobble = (index * 2654435761 + sequence * 40503) % 1000 / 1000  # 0..1, per agent and cycle
        h = r.host
        h.cpu_utilization_ratio = round(0.05 + 0.5 * wobble, 3)
        h.memory_available_bytes = (6 << 30) + int(wobble * (4 << 30))
        h.load1, h.load5, h.load15 = round(4 * wobble, 2), round(3 * wobble, 2), 0.2
        h.processes = 150 + int(wobble * 60)
        for k, fs in enumerate(r.filesystems):
            fs.avail_bytes = self._avail[k] - (index % 97 + k) * (sequence << 16)
            fs.free_bytes = fs.avail_bytes + (20 << 30)
            fs.files_free = 29_000_000 - sequence * (k + 1)
        for source in r.sources:
            source.duration_seconds = round(0.001 + 0.004 * wobble, 4)
        phase = index * 7919 % self.SMART_EVERY  # each agent polls SMART on its own schedule
        smart_at = now - (now - phase) % self.SMART_EVERY
        for d in r.disks:
            d.read_at.FromNanoseconds(int(smart_at * 1e9))
            d.temperature_celsius = 30 + int(smart_at // self.SMART_EVERY + index) % 8
            d.power_on_hours = 21000 + int(smart_at // 3600) % 1000
        ran_at = now - (now - index * 13 % self.DAY) % self.DAY
        for b in r.backups:
            b.last_success.FromNanoseconds(int(ran_at * 1e9))
            b.last_run.FromNanoseconds(int(ran_at * 1e9))
            b.last_verified.FromNanoseconds(int((ran_at - ran_at % (7 * self.DAY)) * 1e9))
        for e in r.events:
            e.time.FromNanoseconds(ns)
        return self._request.SerializeToString()
