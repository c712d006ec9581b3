"""The [spool] table: bounds of the on-disk spool and of each batch sent from it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dcguard.common.config import Table

__all__ = ["SpoolConfig", "parse_size", "parse_spool"]

_KIB = 1024
_MIB = 1024 * _KIB
_UNITS = {"": 1, "b": 1, "kib": _KIB, "mib": _MIB, "gib": 1024 * _MIB,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")
# Far below the collector's default 4 MiB message limit, even uncompressed.
_BATCH_BYTES_LIMIT = 64 * _MIB
_BATCH_REPORTS_LIMIT = 1000  # the collector refuses larger batches
# The collector refuses reports collected more than 400 days ago as a broken clock.
_MAX_AGE_LIMIT = 365 * 86400.0


@dataclass(frozen=True)
class SpoolConfig:
    """Defaults hold 7 days at a 15 s interval for reports up to ~13 KB (docs/delivery.md)."""

    max_bytes: int = 512 * _MIB
    max_age: float = 10 * 86400.0
    batch_max_reports: int = 500
    batch_max_bytes: int = 1 * _MIB

    @property
    def segment_bytes(self) -> int:
        """Segments are deleted whole, so keep each a small share of the bound."""
        return max(16 * _KIB, min(8 * _MIB, self.max_bytes // 16))


def parse_size(text: str) -> int:
    """ "512MiB", "64 KiB", "1GB", "1048576" → bytes; ValueError with a plain sentence."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f'must be a size like "512MiB" or "64KiB", got {text!r}')
    return int(match.group(1)) * _UNITS[unit]


def _size(table: Table, key: str, default: str, minimum: int, maximum: int | None = None) -> int:
    text = table.string(key, default)
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None
    if value < minimum:
        raise table.error(key, f"must be at least {minimum} bytes, got {text!r}")
    if maximum is not None and value > maximum:
        raise table.error(key, f"must be at most {maximum} bytes, got {text!r}")
    return value


def parse_spool(table: Table) -> SpoolConfig:
    """Read and validate [spool]; unknown keys are errors."""
    config = SpoolConfig(
        max_bytes=_size(table, "max_bytes", "512MiB", minimum=64 * _KIB),
        max_age=table.duration("max_age", "10d", minimum=1.0),
        batch_max_reports=table.integer("batch_max_reports", 500, minimum=1),
        batch_max_bytes=_size(table, "batch_max_bytes", "1MiB", minimum=16 * _KIB,
                              maximum=_BATCH_BYTES_LIMIT),
    )
    table.check("max_age", config.max_age, lambda v: v <= _MAX_AGE_LIMIT,
                "must be at most 365d (the collector refuses reports older than 400 days)")
    table.check("batch_max_reports", config.batch_max_reports,
                lambda v: v <= _BATCH_REPORTS_LIMIT,
                f"must be at most {_BATCH_REPORTS_LIMIT} (the collector's batch limit), "
                f"got {config.batch_max_reports}")
    table.finish()
    return config
