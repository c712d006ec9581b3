"""An agent's clock against the collector's: reports from a wrong clock are stored, clamped.

A server that boots with a wrong clock (until NTP corrects it) still reports
its true state, so its reports are never refused for their time: one
stamped further ahead than [limits] max_clock_ahead, or further back than
max_report_age, is stored at its arrival time instead, and the skew is kept
on the host (dcguard_agent_clock_skew_seconds), as event times are clamped
to their report's (security/storage.py). Refusing them instead stalled the
agent's delivery behind them.
"""

from __future__ import annotations

from collections.abc import Sequence

from dcguard.collector.limits import Limits
from dcguard.v1 import collector_pb2 as pb

__all__ = ["clamp_report_times"]


def _seconds(report: pb.Report) -> float:
    return report.collected_at.seconds + report.collected_at.nanos / 1e9


def clamp_report_times(
    reports: Sequence[pb.Report], received_at: float, limits: Limits
) -> tuple[float, int]:
    """Clamp implausible collected_at times to received_at, in place.

    Returns the skew of the newest report (its collected_at as sent minus
    its arrival: positive when the agent's clock is ahead; negative also
    while a backlog drains) and how many reports were clamped.
    """
    skew = 0.0
    clamped = 0
    newest = -1
    for report in reports:
        collected = _seconds(report)
        if report.sequence > newest:
            newest, skew = report.sequence, collected - received_at
        if not (
            received_at - limits.max_age_seconds
            <= collected
            <= received_at + limits.max_future_seconds
        ):
            report.collected_at.FromNanoseconds(int(received_at * 1e9))
            clamped += 1
    return skew, clamped
