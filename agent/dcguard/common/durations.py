"""Durations written the way Prometheus writes them: "500ms", "15s", "1h30m", "7d"."""

from __future__ import annotations

import re

from dcguard.common.i18n import tr

__all__ = ["format_duration", "parse_duration"]

_UNITS = (
    ("y", 365 * 86400.0),
    ("w", 7 * 86400.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
# Units must appear largest first and at most once, as in Prometheus.
_PATTERN = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


def parse_duration(text: str) -> float:
    """Return the seconds in a Prometheus duration; raise ValueError on anything else."""
    if text == "0":
        return 0.0
    match = _PATTERN.match(text)
    if not text or match is None:
        raise ValueError(
            tr('not a duration like "15s", "500ms" or "26h": {value}', value=repr(text))
        )
    return sum(int(v) * factor for v, (_, factor) in zip(match.groups(), _UNITS) if v)


def format_duration(seconds: float) -> str:
    """Write seconds back as the shortest Prometheus duration (ms precision)."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    parts = []
    for unit, factor in _UNITS:
        step = round(factor * 1000)
        if millis >= step:
            parts.append(f"{millis // step}{unit}")
            millis %= step
    return "".join(parts)
