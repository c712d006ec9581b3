"""A stored security event and the severity scale shared by storage, detections and output."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RANSOMWARE_SEVERITY",
    "RANSOMWARE_SIGNS",
    "SEVERITIES",
    "StoredEvent",
    "format_time",
    "is_ransomware_sign",
    "severity_name",
    "severity_rank",
]

# Index = the proto Severity value; UNSPECIFIED is stored as info.
SEVERITIES = ("info", "info", "low", "medium", "high", "critical")
_RANK = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


# An agent's ransomware signs (its watcher sends them at severity critical): what the
# ransomware_suspected risk reason and the ransomware_spreading detection both read.
RANSOMWARE_SIGNS = ("ransomware_suspected", "mass_deletion")
RANSOMWARE_SEVERITY = "critical"


def severity_name(value: int) -> str:
    """The name of a proto Severity value (validated to be in range before storage)."""
    return SEVERITIES[value] if 0 <= value < len(SEVERITIES) else "info"


def severity_rank(name: str) -> int:
    """1 (info) to 5 (critical); raises ValueError for anything else."""
    try:
        return _RANK[name]
    except KeyError:
        raise ValueError(f"must be one of {', '.join(_RANK)}, got {name!r}") from None


def format_time(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, as both RFC 5424 and ECS @timestamp want it."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class StoredEvent:
    """One row of security_events. detection is True only for events the collector made."""

    id: int
    host: str
    department: str
    time: float
    received_at: float
    type: str
    severity: str
    technique: str = ""
    user: str = ""
    source_address: str = ""
    process: str = ""
    raw: str = ""
    source: str = ""
    path: str = ""
    port: int = 0
    protocol: str = ""
    tags: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
    detection: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A flat JSON-ready dict for `dcguard-collector events --json`."""
        return {
            "id": self.id,
            "time": format_time(self.time),
            "host": self.host,
            "department": self.department,
            "type": self.type,
            "severity": self.severity,
            "technique": self.technique,
            "user": self.user,
            "source_address": self.source_address,
            "process": self.process,
            "source": self.source,
            "path": self.path,
            "port": self.port,
            "protocol": self.protocol,
            "tags": list(self.tags),
            "details": self.details,
            "detection": self.detection,
            "message": self.raw,
            "received_at": format_time(self.received_at),
        }


def is_ransomware_sign(event: StoredEvent) -> bool:
    """An agent's ransomware sign (a collector's own detection never is one)."""
    return (
        not event.detection
        and event.type in RANSOMWARE_SIGNS
        and event.severity == RANSOMWARE_SEVERITY
    )
