"""Building security reports the way the agent does and submitting them over real gRPC."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import grpc

from dcguard.v1 import collector_pb2 as pb
from dcguard.v1 import collector_pb2_grpc

# What the agent's auth_log source sets for each type (severity, technique).
KINDS = {
    "ssh_login_failed": (pb.SEVERITY_LOW, "T1110"),
    "ssh_invalid_user": (pb.SEVERITY_LOW, "T1110"),
    "ssh_login_accepted": (pb.SEVERITY_INFO, "T1021.004"),
    "ssh_disconnect_preauth": (pb.SEVERITY_INFO, ""),
    "sudo_command": (pb.SEVERITY_INFO, "T1548.003"),
    "sudo_auth_failure": (pb.SEVERITY_MEDIUM, "T1548.003"),
    "user_created": (pb.SEVERITY_MEDIUM, "T1136.001"),
    "group_member_added": (pb.SEVERITY_MEDIUM, "T1098"),
    "user_modified": (pb.SEVERITY_MEDIUM, "T1098"),
    "file_modified": (pb.SEVERITY_MEDIUM, "T1565.001"),
    "port_opened": (pb.SEVERITY_LOW, ""),
}


def event(type_: str, when: float, *, source_address: str = "", user: str = "",
          raw: str = "", severity: int | None = None, **details: str) -> pb.SecurityEvent:
    """One SecurityEvent as the agent would send it."""
    default_severity, technique = KINDS.get(type_, (pb.SEVERITY_INFO, ""))
    message = pb.SecurityEvent(
        type=type_, severity=default_severity if severity is None else severity,
        technique=technique, user=user, source_address=source_address,
        process="sshd" if type_.startswith("ssh_") else type_.split("_")[0],
        raw=raw or f"{type_} user={user} from={source_address}",
        source="auth_log", details=details)
    message.time.FromNanoseconds(int(when * 1e9))
    return message


def failures(address: str, start: float, count: int, step: float = 1.0,
             user: str = "root") -> list[pb.SecurityEvent]:
    """count failed SSH passwords from address, step seconds apart."""
    return [event("ssh_login_failed", start + i * step, source_address=address, user=user)
            for i in range(count)]


class FakeAgent:
    """Speaks Submit like a real agent: its own instance id and increasing sequences."""

    def __init__(self, address: str, host: str = "web01", department: str = "so-tu-phap") -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = collector_pb2_grpc.CollectorStub(self.channel)
        self.info = pb.AgentInfo(host=host, department=department, agent_version="test",
                                 os="linux", kernel="6", interval_seconds=15,
                                 instance_id=uuid.uuid4().hex)
        self.sequence = 0

    def report(self, events: list[pb.SecurityEvent], stats: pb.SecurityStats | None = None,
               ) -> pb.Report:
        self.sequence += 1
        report = pb.Report(sequence=self.sequence, events=events)
        report.collected_at.FromNanoseconds(time.time_ns())
        if stats is not None:
            report.security_stats.CopyFrom(stats)
        return report

    def submit(self, *reports: pb.Report) -> pb.SubmitResponse:
        request = pb.SubmitRequest(agent=self.info, reports=list(reports))
        response: pb.SubmitResponse = self.stub.Submit(request, timeout=30)
        return response

    def send(self, events: list[pb.SecurityEvent], **kwargs: pb.SecurityStats) -> pb.Report:
        """Submit one report with these events; returns it (to resend it)."""
        report = self.report(events, **kwargs)
        self.submit(report)
        return report

    def close(self) -> None:
        self.channel.close()


def stored_events(database: Path) -> list[dict[str, object]]:
    """Every stored event row, read straight from the collector's SQLite file."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM security_events ORDER BY id")]
    finally:
        db.close()
    for row in rows:
        row["details"] = json.loads(str(row["details"]))
    return rows
