"""The [spool] table: bounds of the on-disk spool and of each batch sent from it."""

from __future__ import annotations

from dataclasses import dataclass

from dcguard.common.config import Table
from dcguard.common.i18n import tr

__all__ = ["SpoolConfig", "parse_spool"]

_KIB = 1024
_MIB = 1024 * _KIB
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


def parse_spool(table: Table) -> SpoolConfig:
    """Read and validate [spool]; unknown keys are errors."""
    defaults = SpoolConfig()
    config = SpoolConfig(
        max_bytes=table.size("max_bytes", defaults.max_bytes, minimum=64 * _KIB),
        max_age=table.duration("max_age", defaults.max_age, minimum=1.0),
        batch_max_reports=table.integer("batch_max_reports", defaults.batch_max_reports, minimum=1),
        batch_max_bytes=table.size(
            "batch_max_bytes",
            defaults.batch_max_bytes,
            minimum=16 * _KIB,
            maximum=_BATCH_BYTES_LIMIT,
        ),
    )
    table.check(
        "max_age",
        config.max_age,
        lambda v: v <= _MAX_AGE_LIMIT,
        lambda: tr("must be at most 365d (the collector refuses reports older than 400 days)"),
    )
    table.check(
        "batch_max_reports",
        config.batch_max_reports,
        lambda v: v <= _BATCH_REPORTS_LIMIT,
        lambda: tr(
            "must be at most {maximum} (the collector's batch limit), got {value}",
            maximum=_BATCH_REPORTS_LIMIT,
            value=config.batch_max_reports,
        ),
    )
    table.finish()
    return config
