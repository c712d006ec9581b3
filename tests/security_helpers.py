"""Building security reports the way the agent does and submitting them over real gRPC."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import ssl
import threading
import uuid
from pathlib import Path

import grpc

from dcguard.v1 import collector_pb2 as pb
from tests.submit import agent_info, make_report, submit

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


def event(
    type_: str,
    when: float,
    *,
    source_address: str = "",
    user: str = "",
    raw: str = "",
    severity: int | None = None,
    path: str = "",
    port: int = 0,
    protocol: str = "",
    **details: str,
) -> pb.SecurityEvent:
    """One SecurityEvent as the agent would send it."""
    default_severity, technique = KINDS.get(type_, (pb.SEVERITY_INFO, ""))
    message = pb.SecurityEvent(
        type=type_,
        severity=default_severity if severity is None else severity,
        technique=technique,
        user=user,
        source_address=source_address,
        process="sshd" if type_.startswith("ssh_") else type_.split("_", maxsplit=1)[0],
        raw=raw or f"{type_} user={user} from={source_address}",
        source="auth_log",
        path=path,
        port=port,
        protocol=protocol,
        details=details,
    )
    message.time.FromNanoseconds(int(when * 1e9))
    return message


def ransomware_sign(
    when: float,
    sign: str = "mass_rename",
    *,
    type_: str = "ransomware_suspected",
    path: str = "/srv/share",
    files: int = 212,
    severity: int = pb.SEVERITY_CRITICAL,
    **extra: str,
) -> pb.SecurityEvent:
    """One event as the agent's ransomware watcher sends it (the contract: critical,
    source "ransomware", details sign / files_touched / paths, and extension or
    note_name where they apply)."""
    message = pb.SecurityEvent(
        type=type_,
        severity=severity,
        technique="T1485" if type_ == "mass_deletion" else "T1486",
        source="ransomware",
        process="dcguard-agent",
        path=path,
        raw=f"{sign}: {files} files under {path}",
        details={
            "sign": sign,
            "files_touched": str(files),
            "paths": f"{path}/a.docx.locked,{path}/b.xlsx.locked",
            **extra,
        },
    )
    message.time.FromNanoseconds(int(when * 1e9))
    return message


def failures(
    address: str, start: float, count: int, step: float = 1.0, user: str = "root"
) -> list[pb.SecurityEvent]:
    """count failed SSH passwords from address, step seconds apart (OpenSSH 9 wording,
    as in /work/shared/corpus/auth-debian12-ubuntu24-rfc3339.log)."""
    return [
        event(
            "ssh_login_failed",
            start + i * step,
            source_address=address,
            user=user,
            raw=f"sshd[3411]: Failed password for {user} from {address} port {54733 + i} ssh2",
            method="password",
        )
        for i in range(count)
    ]


class FakeAgent:
    """Speaks Submit like a real agent: its own instance id and increasing sequences."""

    def __init__(self, address: str, host: str = "web01", department: str = "so-tu-phap") -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.info = agent_info(host, department, instance_id=uuid.uuid4().hex)
        self.sequence = 0

    def report(
        self,
        events: list[pb.SecurityEvent],
        stats: pb.SecurityStats | None = None,
    ) -> pb.Report:
        self.sequence += 1
        report = make_report(self.sequence, events=events)
        if stats is not None:
            report.security_stats.CopyFrom(stats)
        return report

    def submit(self, *reports: pb.Report) -> pb.SubmitResponse:
        return submit(self.address, list(reports), self.info, channel=self.channel)

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


class SyslogMessage:
    """One RFC 5424 message split into its parts (strictly: anything else raises ValueError)."""

    HEADER = re.compile(r"<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) ")

    def __init__(self, data: bytes) -> None:
        text = data.decode("ascii")  # our messages are ASCII by construction
        match = self.HEADER.match(text)
        if match is None:
            raise ValueError(f"not an RFC 5424 header: {text[:80]!r}")
        self.pri = int(match.group(1))
        self.version = match.group(2)
        self.timestamp, self.hostname, self.app_name, self.procid, self.msgid = match.groups()[2:]
        self.sd_id, self.sd, rest = _parse_sd(text[match.end() :])
        if not rest.startswith(" "):
            raise ValueError("no space between structured data and message")
        self.msg = rest[1:]
        self.json: dict[str, object] = json.loads(self.msg)


def _parse_sd(text: str) -> tuple[str, dict[str, str], str]:
    """Parse one SD-ELEMENT with escaped values (RFC 5424 6.3); return id, params, rest."""
    if not text.startswith("["):
        raise ValueError("no structured data")
    end = text.index(" ")
    sd_id, i, params = text[1:end], end, {}
    while text[i] == " ":
        eq = text.index("=", i)
        name = text[i + 1 : eq]
        if text[eq + 1] != '"':
            raise ValueError("SD value not quoted")
        i, value = eq + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                i += 1
            value.append(text[i])
            i += 1
        params[name] = "".join(value)
        i += 1
    if text[i] != "]":
        raise ValueError("SD element not closed")
    return sd_id, params, text[i + 1 :]


class SyslogListener:
    """An RFC 5424 receiver on 127.0.0.1: octet-counted TCP or TLS, or UDP datagrams.

    Keeps every message received (parsed) and every framing error seen.
    """

    def __init__(
        self, transport: str = "tcp", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.transport = transport
        self.port = port
        self.tls = tls
        self.messages: list[SyslogMessage] = []
        self.raw: list[bytes] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._stopped = threading.Event()

    def start(self) -> SyslogListener:
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._stopped.clear()
        if self.transport == "udp":
            threading.Thread(target=self._datagrams, args=(sock,), daemon=True).start()
        else:
            sock.listen(16)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection, like a SIEM going down."""
        self._stopped.set()
        with self._lock:
            socks = [self._sock, *self._conns]
            self._conns = []
            self._sock = None
        for sock in socks:
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def received(self) -> list[SyslogMessage]:
        with self._lock:
            return list(self.messages)

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self.raw.append(data)
        try:
            message = SyslogMessage(data)
        except (ValueError, UnicodeDecodeError) as exc:
            with self._lock:
                self.errors.append(f"{exc}: {data[:100]!r}")
            return
        with self._lock:
            self.messages.append(message)

    def _datagrams(self, sock: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                data = sock.recv(70000)
            except OSError:
                return
            self._keep(data)

    def _accept(self, sock: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    with self._lock:
                        self.errors.append(f"TLS handshake: {exc}")
                    conn.close()
                    continue
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b" " in buffer[:12]:
                length_text, _, rest = buffer.partition(b" ")
                if not length_text.isdigit():
                    with self._lock:
                        self.errors.append(f"bad frame length {length_text[:20]!r}")
                    return
                length = int(length_text)
                if len(rest) < length:
                    break
                self._keep(rest[:length])
                buffer = rest[length:]
