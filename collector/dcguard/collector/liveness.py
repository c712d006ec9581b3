"""When an agent counts as down: the one definition /metrics, the CLI and the risk engine share."""

from __future__ import annotations

from typing import Protocol

__all__ = ["is_up", "staleness_window"]


class _Seen(Protocol):
    @property
    def last_seen(self) -> float: ...

    @property
    def interval_seconds(self) -> float: ...


def staleness_window(record: _Seen, down_after_intervals: int) -> float:
    """Seconds after its last report before an agent is down: a few of its own intervals."""
    return down_after_intervals * record.interval_seconds


def is_up(record: _Seen, now: float, down_after_intervals: int) -> bool:
    """An agent is up while its last report is younger than its staleness window."""
    return now - record.last_seen <= staleness_window(record, down_after_intervals)
