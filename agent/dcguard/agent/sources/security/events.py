"""Building SecurityEvent messages and the [security] settings every security source shares.

The event vocabulary (types, severities, techniques) is documented in
docs/security-events.md; the collector's detections rely on it.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "SEVERITIES",
    "SecurityCounters",
    "SecuritySettings",
    "bare_ip",
    "cap_text",
    "counters_for",
    "make_event",
    "security_settings",
]

SEVERITIES = {
    "info": pb.SEVERITY_INFO,
    "low": pb.SEVERITY_LOW,
    "medium": pb.SEVERITY_MEDIUM,
    "high": pb.SEVERITY_HIGH,
    "critical": pb.SEVERITY_CRITICAL,
}
SOURCE_TABLES = ("auth_log", "fim", "ports", "ransomware")


@dataclass(frozen=True)
class SecuritySettings:
    """Keys of [security] itself, shared by its sources."""

    max_events_per_report: int
    max_event_bytes_per_report: int
    max_pending_events: int
    raw_max_bytes: int


def security_settings(root: Table) -> SecuritySettings:
    """Read [security]'s own keys; a key that is neither a setting nor a source table is unknown.

    Every security source calls this, so each validates the shared table;
    the sub-tables are read and finished by their own source.
    """
    table = root.table("security")
    settings = SecuritySettings(
        max_events_per_report=table.integer("max_events_per_report", 500, minimum=1),
        max_event_bytes_per_report=table.size(
            "max_event_bytes_per_report", 512 * 1024, minimum=4096
        ),
        max_pending_events=table.integer("max_pending_events", 20000, minimum=1),
        raw_max_bytes=table.size("raw_max_bytes", 2048, minimum=64),
    )
    if settings.max_pending_events < settings.max_events_per_report:
        raise table.error(
            "max_pending_events",
            tr(
                "must be at least max_events_per_report ({value})",
                value=settings.max_events_per_report,
            ),
        )
    for name in SOURCE_TABLES:
        if table.has(name):
            table.table(name)
    table.finish()
    return settings


class SecurityCounters:
    """SecurityStats counters, cumulative since the agent started, shared by the sources.

    The report has one SecurityStats; each source writes the shared totals, so
    whichever source runs last leaves the complete, monotonic values.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {
            "lines_read": 0,
            "lines_unrecognised": 0,
            "lines_oversized": 0,
            "events_deferred": 0,
        }

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def value(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def fill(self, stats: pb.SecurityStats) -> None:
        with self._lock:
            for name, value in self._values.items():
                setattr(stats, name, value)


_COUNTERS: dict[Path, SecurityCounters] = {}
_COUNTERS_LOCK = threading.Lock()


def counters_for(state_dir: Path) -> SecurityCounters:
    """The counters of the agent owning state_dir (one agent per state directory)."""
    with _COUNTERS_LOCK:
        return _COUNTERS.setdefault(state_dir, SecurityCounters())


def cap_text(text: str, limit: int) -> str:
    """Cut text to at most limit UTF-8 bytes without splitting a character."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def bare_ip(text: str) -> str:
    """The address if text is an IPv4/IPv6 address (zone and brackets removed), else ""."""
    candidate = text.strip("[]")
    try:
        return str(ipaddress.ip_address(candidate.split("%", 1)[0]))
    except ValueError:
        return ""


def make_event(
    source: str,
    type_: str,
    severity: str,
    when: float,
    *,
    technique: str = "",
    user: str = "",
    source_address: str = "",
    process: str = "",
    raw: str = "",
    raw_max_bytes: int = 2048,
    details: dict[str, str] | None = None,
    **fields: object,
) -> pb.SecurityEvent:
    """One SecurityEvent; free text is capped, NULs are removed (they end C strings downstream)."""
    stamp = Timestamp()
    stamp.FromNanoseconds(int(when * 1e9))
    event = pb.SecurityEvent(
        time=stamp,
        type=type_,
        severity=SEVERITIES[severity],
        technique=technique,
        user=cap_text(user.replace("\x00", ""), 256),
        source_address=source_address,
        process=cap_text(process, 256),
        raw=cap_text(raw.replace("\x00", ""), raw_max_bytes),
        source=source,
    )
    for key, value in (details or {}).items():
        event.details[key] = cap_text(value.replace("\x00", ""), 512)
    for name, field_value in fields.items():
        setattr(event, name, field_value)
    return event
