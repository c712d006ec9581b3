"""Recognising storage I/O errors in kernel log lines and counting them per device.

Matched anywhere in the line, so every prefix the field produces works: raw
dmesg "[ 12.3]", dmesg -T, syslog "Mon DD HH:MM:SS host kernel:", RFC 3339
(rsyslog on Debian 12) and the bare journal MESSAGE. The formats counted:

- "I/O error, dev sdc, sector N" and "critical medium error, dev sdc, ..."
  (block layer; with or without the blk_update_request:/print_req_error: prefix)
- "Buffer I/O error on dev sdj1, logical block N" ("on device" in older kernels)
- "EXT4-fs error (device dm-4): ..." (and ext2/ext3)
- XFS "metadata I/O error" (old and new wording) and "I/O Error Detected"
- libata "ataN.00: failed command: ...": counted against the disk when the
  same error-handling block names it ("sd 24:0:0:0: [sdc] ..."), or when
  sysfs shows which disk hangs off that port, else against "ataN".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from dcguard.agent.sources.storage.isotime import parse_iso_time

__all__ = ["DeviceCount", "ErrorCounter", "ata_port_map", "line_timestamp"]

MESSAGE_CAP = 300
_PATTERNS = (
    re.compile(r"\berror, dev ([\w\-.:!]+?),? sector\b"),
    re.compile(r"\bBuffer I/O error on dev(?:ice)? ([\w\-.:!]+?), logical block"),
    re.compile(r"\bEXT[234]-fs error \(device ([^)\s]+)\)"),
    re.compile(r"\bXFS \(([^)\s]+)\): metadata I/O error"),
    re.compile(r"\bXFS \(([^)\s]+)\): I/O Error Detected"),
)
_ATA_FAILED = re.compile(r"\bata(\d+)(?:\.\d+)?: failed command:")
_ATA_DONE = re.compile(r"\bata(\d+)(?:\.\d+)?: EH complete")
_SD_NAME = re.compile(r"\bsd \d+:\d+:\d+:\d+: \[(\w+)\]")
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\s")
_DMESG_T = re.compile(r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]")


def _rfc3339(text: str, now: float) -> float:
    return parse_iso_time(text)


def _syslog(text: str, now: float) -> float:
    # Syslog omits the year: take this year, or last year for a December line read in January.
    year = time.localtime(now).tm_year
    stamp = time.mktime(time.strptime(f"{year} {text}", "%Y %b %d %H:%M:%S"))
    return stamp - (365 * 86400 if stamp > now + 86400 else 0)


def _dmesg_t(text: str, now: float) -> float:
    return time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y"))


_PREFIXES = ((_RFC3339, _rfc3339), (_SYSLOG, _syslog), (_DMESG_T, _dmesg_t))


def line_timestamp(line: str, now: float) -> float | None:
    """The wall-clock time a log line carries, if its prefix has one we can read."""
    for pattern, parse in _PREFIXES:
        match = pattern.match(line)
        if match:
            try:
                return parse(match.group(1), now)
            except (ValueError, OverflowError):
                return None  # e.g. a dmesg -T line in a non-English locale
    return None


def _time_of(line: str, fallback: float) -> float:
    return line_timestamp(line, fallback) or fallback


def ata_port_map(sys_root: Path) -> dict[str, str]:
    """ataN -> disk name, from where each disk sits in sysfs (.../ataN/host*/.../block/sdX)."""
    mapping: dict[str, str] = {}
    block = sys_root / "class" / "block"
    try:
        entries = list(block.iterdir())
    except OSError:
        return mapping
    for entry in entries:
        if (entry / "partition").exists():
            continue
        try:
            parts = entry.resolve().parts
        except OSError:
            continue
        for part in parts:
            if re.fullmatch(r"ata\d+", part):
                mapping.setdefault(part, entry.name)
    return mapping


@dataclass
class DeviceCount:
    errors_total: int = 0
    last_error_at: float = 0.0
    last_message: str = ""


@dataclass
class ErrorCounter:
    """Counts per device; feed() it lines in order. Plain data, so it saves as JSON."""

    counts: dict[str, DeviceCount] = field(default_factory=dict)
    ata_ports: dict[str, str] = field(default_factory=dict)
    # ata port -> (failed commands not yet attributed, time, message)
    _pending: dict[str, tuple[int, float, str]] = field(default_factory=dict)

    def _add(self, device: str, count: int, when: float, message: str) -> None:
        entry = self.counts.setdefault(device, DeviceCount())
        entry.errors_total += count
        if when >= entry.last_error_at:
            entry.last_error_at = when
            entry.last_message = message[:MESSAGE_CAP]

    def feed(self, line: str, when: float) -> None:
        """Count the errors one line reports.

        when is the line's time if its source knows it (the journal), else when it
        was read; a timestamp prefix in the line itself wins. Lines that cannot
        matter are skipped before any regular expression runs: a kern.log is
        mostly other messages.
        """
        text = line.strip()
        if (
            "rror" not in text
            and "failed command" not in text
            and not (self._pending and ("sd " in text or "EH complete" in text))
        ):
            return
        for pattern in _PATTERNS:
            match = pattern.search(text)
            if match:
                self._add(match.group(1), 1, _time_of(text, when), text)
                return
        failed = _ATA_FAILED.search(text)
        if failed:
            port = f"ata{failed.group(1)}"
            device = self.ata_ports.get(port)
            if device:
                self._add(device, 1, _time_of(text, when), text)
            else:
                count, _, _ = self._pending.get(port, (0, 0.0, ""))
                self._pending[port] = (count + 1, _time_of(text, when), text)
            return
        named = _SD_NAME.search(text)
        if named and len(self._pending) == 1:
            # The SCSI midlayer names the disk inside the same error-handling block.
            port, (count, at, message) = self._pending.popitem()
            self.ata_ports[port] = named.group(1)
            self._add(named.group(1), count, at, message)
            return
        done = _ATA_DONE.search(text)
        if done:
            self._flush(f"ata{done.group(1)}")

    def _flush(self, port: str) -> None:
        pending = self._pending.pop(port, None)
        if pending:
            count, at, message = pending
            self._add(self.ata_ports.get(port, port), count, at, message)

    def flush(self) -> None:
        """Attribute failed commands whose block never named a disk to their port."""
        for port in list(self._pending):
            self._flush(port)

    def to_json(self) -> dict[str, object]:
        return {
            "counts": {
                name: [c.errors_total, c.last_error_at, c.last_message]
                for name, c in self.counts.items()
            },
            "ata_ports": dict(self.ata_ports),
        }

    @classmethod
    def from_json(cls, data: object) -> ErrorCounter:
        """Rebuild from to_json(); anything malformed raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        counter = cls()
        counts = data.get("counts", {})
        ports = data.get("ata_ports", {})
        if not isinstance(counts, dict) or not isinstance(ports, dict):
            raise ValueError("counts/ata_ports are not objects")
        for name, value in counts.items():
            if not (
                isinstance(value, list)
                and len(value) == 3
                and isinstance(value[0], int)
                and isinstance(value[1], (int, float))
                and isinstance(value[2], str)
            ):
                raise ValueError(f"bad count for {name!r}")
            counter.counts[str(name)] = DeviceCount(value[0], float(value[1]), value[2])
        counter.ata_ports = {str(k): str(v) for k, v in ports.items()}
        return counter

    def copy(self) -> ErrorCounter:
        clone = ErrorCounter.from_json(self.to_json())
        clone._pending = dict(self._pending)
        return clone
