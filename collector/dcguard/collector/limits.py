"""The [limits] table's values: bounds on one Submit, shared by every stage that applies one.

Receive validates against them, settle clamps report times and rate-limits
with them, ingest processes carry them. The defaults are the agent's too
(dcguard/common/limits.py), so an agent never builds a report they refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcguard.common.limits import (
    MAX_ENTRIES,
    MAX_EVENTS_PER_REPORT,
    MAX_FILESYSTEMS,
    MAX_REPORTS_PER_BATCH,
    MAX_SOURCES,
    MAX_STRING,
)

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds on one request (config table [limits]; see docs/security.md)."""

    # Defaults shared with the agent, which never builds a report they refuse.
    max_reports_per_batch: int = MAX_REPORTS_PER_BATCH
    max_filesystems: int = MAX_FILESYSTEMS
    max_sources: int = MAX_SOURCES
    max_string: int = MAX_STRING
    # Reports from further back than this are a broken clock, not a backlog;
    # they, and reports further ahead than max_future_seconds, are stored at
    # their arrival time with the skew exported (clock.py), never refused.
    max_age_seconds: float = 400 * 86400.0
    max_future_seconds: float = 3600.0
    # Any repeated or map field of a report (disks, backups, members, details…).
    max_entries: int = MAX_ENTRIES
    # Report.events: the agent's security sources cap themselves lower.
    max_events_per_report: int = MAX_EVENTS_PER_REPORT
    # Per agent (by authenticated host): a token bucket of requests; 0 = no limit.
    rate_per_second: float = 20.0
    rate_burst: int = 40
