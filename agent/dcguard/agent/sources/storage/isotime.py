"""ISO 8601 / RFC 3339 times as tools print them, read the same way on Python 3.9 and later.

Python 3.9's datetime.fromisoformat wants exactly 3 or 6 fraction digits and
"+HH:MM"; restic prints up to 9 digits (Go's RFC3339Nano drops trailing
zeros, so any count occurs), rsyslog "+0700"-style offsets occur, and "Z".
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["parse_iso_time"]

_FRACTION = re.compile(r"\.(\d+)")
_OFFSET = re.compile(r"([+-]\d\d)(\d\d)$")


def parse_iso_time(text: str) -> float:
    """Seconds since the epoch; a time without offset is local time. ValueError if unreadable."""
    cleaned = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    cleaned = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), cleaned, count=1)
    cleaned = _OFFSET.sub(r"\1:\2", cleaned)
    return datetime.fromisoformat(cleaned).timestamp()
