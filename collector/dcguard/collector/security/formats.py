"""What leaves for the SIEM: ECS-shaped JSON, and RFC 5424 syslog carrying it.

JSON is written with ensure_ascii, so whatever an event holds (newlines,
quotes, U+2028, emoji) the output is one line of printable ASCII: it cannot
break a JSON-lines file, a syslog frame or a SIEM's line splitter.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from dcguard.collector.events import StoredEvent, format_time, severity_rank

__all__ = ["ecs_document", "ecs_json", "syslog_frame", "syslog_message"]

# RFC 5424 severities: critical → 2 (crit) … info → 6 (informational).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
# ECS event.category by event-type prefix.
_CATEGORIES = (
    ("ssh_", ["authentication"]),
    ("su_", ["authentication"]),
    ("sudo_auth", ["authentication"]),
    ("sudo_", ["process"]),
    ("user_", ["iam"]),
    ("group_", ["iam"]),
    ("password_", ["iam"]),
    ("file_", ["file"]),
    ("port_", ["network"]),
    # The agent's ransomware watcher: files encrypted (malware at work) or wiped.
    ("ransomware_", ["malware", "file"]),
    ("mass_deletion", ["file"]),
)
# Only the collector's own detections are intrusion_detection alerts; an agent
# event that merely calls itself "brute_force" is not.
_DETECTION_CATEGORIES = {
    "brute_force": ["intrusion_detection", "authentication"],
    "distributed_attack": ["intrusion_detection", "authentication"],
    "success_after_failures": ["intrusion_detection", "authentication"],
    "new_privileged_account": ["intrusion_detection", "iam"],
    "ransomware_spreading": ["intrusion_detection", "malware"],
}
_FAILURE_WORDS = ("failed", "failure", "invalid")
_SUCCESS_WORDS = ("accepted", "success")
SD_ID = "dcguard@32473"  # 32473: the documentation enterprise number (RFC 5612)


def _category(event: StoredEvent) -> list[str]:
    if event.detection:
        return _DETECTION_CATEGORIES.get(event.type, ["intrusion_detection"])
    for prefix, category in _CATEGORIES:
        if event.type.startswith(prefix):
            return category
    return ["host"]


def _outcome(event_type: str) -> str:
    if any(word in event_type for word in _FAILURE_WORDS):
        return "failure"
    if any(word in event_type for word in _SUCCESS_WORDS):
        return "success"
    return "unknown"


def ecs_document(event: StoredEvent) -> dict[str, Any]:
    """The event as an ECS document (nested objects, as Elasticsearch stores them)."""
    doc: dict[str, Any] = {
        "@timestamp": format_time(event.time),
        "message": event.raw,
        "host": {"name": event.host},
        "event": {
            "id": str(event.id),
            "kind": "alert" if event.detection else "event",
            "category": _category(event),
            "action": event.type,
            "outcome": _outcome(event.type),
            "severity": severity_rank(event.severity),
            "provider": event.source,
            "module": "dcguard",
            "dataset": "dcguard.security",
            "ingested": format_time(event.received_at),
        },
        "log": {"level": event.severity},
        "labels": {"department": event.department},
        "observer": {"vendor": "dcguard", "product": "dcguard-collector"},
    }
    if event.source_address:
        try:
            ipaddress.ip_address(event.source_address)
            doc["source"] = {"ip": event.source_address}
        except ValueError:  # ECS source.ip must be an IP; keep anything else as address
            doc["source"] = {"address": event.source_address}
    if event.user:
        doc["user"] = {"name": event.user}
    if event.process:
        doc["process"] = {"name": event.process}
    if event.path:
        doc["file"] = {"path": event.path}
    if event.port:
        doc["server"] = {"port": event.port}
    if event.protocol:
        doc["network"] = {"transport": event.protocol}
    if event.technique:
        doc["threat"] = {"framework": "MITRE ATT&CK", "technique": {"id": [event.technique]}}
    if event.tags:
        doc["tags"] = list(event.tags)
    if event.details:
        doc["dcguard"] = {"details": event.details}
    return doc


def ecs_json(event: StoredEvent) -> str:
    """One line of ASCII JSON, no newline at the end."""
    return json.dumps(
        ecs_document(event), ensure_ascii=True, separators=(",", ":"), sort_keys=False
    )


def _sd_value(value: str) -> str:
    """Escape an SD-PARAM value (RFC 5424 6.3.3) and keep it ASCII."""
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", "\\n")


def _header_token(value: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, at most limit chars, "-" if empty."""
    text = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def syslog_message(
    event: StoredEvent, facility: int, app_name: str, max_bytes: int | None = None
) -> bytes:
    """An RFC 5424 message: header, one SD element, and the ECS JSON as MSG.

    With max_bytes (UDP), an oversized message has its long strings cut and
    its details dropped (labels.truncated = "true"); only a message still too
    long after that is cut at max_bytes.
    """
    pri = facility * 8 + SYSLOG_SEVERITY.get(event.severity, 6)
    params = (
        ("id", str(event.id)),
        ("kind", "alert" if event.detection else "event"),
        ("type", event.type),
        ("severity", event.severity),
        ("department", event.department),
        ("technique", event.technique),
    )
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params if v) + "]"
    header = (
        f"<{pri}>1 {format_time(event.time)} {_header_token(event.host, 255)} "
        f"{_header_token(app_name, 48)} - {_header_token(event.type, 32)} {sd} "
    )
    data = (header + ecs_json(event)).encode("ascii")
    if max_bytes is not None and len(data) > max_bytes:
        data = _shrunk_json(event, header, max_bytes)
    return data


def _shrunk_json(event: StoredEvent, header: str, max_bytes: int) -> bytes:
    """Header + ECS JSON with details dropped and long strings cut until it fits."""
    for cut in (512, 128, 32, 0):
        doc = ecs_document(event)
        doc["message"] = event.raw[:cut]
        doc.pop("dcguard", None)
        for key, field in (
            ("user", "name"),
            ("file", "path"),
            ("process", "name"),
            ("source", "address"),
        ):
            if key in doc and field in doc[key]:
                doc[key][field] = str(doc[key][field])[:cut]
        doc["labels"]["truncated"] = "true"
        data = (header + json.dumps(doc, ensure_ascii=True, separators=(",", ":"))).encode("ascii")
        if len(data) <= max_bytes:
            return data
    return data[:max_bytes]


def syslog_frame(message: bytes) -> bytes:
    """Octet-counting framing (RFC 6587 3.4.1, RFC 5425): "LEN SP MSG"."""
    return str(len(message)).encode("ascii") + b" " + message
