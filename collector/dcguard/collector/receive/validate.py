"""Checking a SubmitRequest before anything is stored.

The limits keep one misbehaving or hostile agent from filling the database,
breaking the exposition format or poisoning another host's state.
"""

from __future__ import annotations

import grpc

from dcguard.collector.errors import Rejection
from dcguard.collector.limits import Limits
from dcguard.collector.receive.validate_events import validate_events
from dcguard.collector.receive.validate_storage import validate_storage
from dcguard.collector.receive.validate_walk import first_problem, within_limits
from dcguard.v1 import collector_pb2 as pb

__all__ = ["MAX_SEQUENCE", "validate_request"]

# The largest sequence SQLite's INTEGER holds; store.py also refuses a
# sequence that jumps implausibly far above the host's last.
MAX_SEQUENCE = 2**63 - 1


def _too_long(value: str, limits: Limits) -> bool:
    return len(value) > limits.max_string


def validate_request(request: pb.SubmitRequest, now: float, limits: Limits) -> None:
    """Raise Rejection for the first thing wrong with the request."""
    if not request.reports:
        raise Rejection(grpc.StatusCode.INVALID_ARGUMENT, "invalid_report", "no reports")
    if len(request.reports) > limits.max_reports_per_batch:
        raise Rejection(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too_large",
            f"{len(request.reports)} reports in one batch; at most {limits.max_reports_per_batch}",
        )
    agent = request.agent
    for text in (agent.agent_version, agent.os, agent.kernel, agent.instance_id):
        if _too_long(text, limits):
            raise Rejection(
                grpc.StatusCode.INVALID_ARGUMENT, "too_large", "an agent field is too long"
            )
    if not agent.interval_seconds > 0 or agent.interval_seconds > 86400:
        raise Rejection(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_report",
            "agent.interval_seconds must be within (0, 86400]",
        )
    previous = 0
    for report in request.reports:
        if report.sequence <= previous:
            raise Rejection(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid_report",
                "sequences must be positive and strictly increasing in a batch",
            )
        if report.sequence > MAX_SEQUENCE:
            raise Rejection(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid_report",
                f"report sequence {report.sequence} is above {MAX_SEQUENCE}",
            )
        previous = report.sequence
        _validate_report(report, now, limits)


def _validate_report(report: pb.Report, now: float, limits: Limits) -> None:
    # collected_at is not refused however wrong: a report from a skewed clock
    # is still true, and is stored with its time clamped (clock.py).
    for kind, count, limit in (
        ("filesystems", len(report.filesystems), limits.max_filesystems),
        ("sources", len(report.sources), limits.max_sources),
    ):
        if count > limit:
            raise Rejection(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too_large",
                f"report {report.sequence}: {count} {kind}; at most {limit}",
            )
    # Two entries with the same identity would be duplicate series, which
    # makes Prometheus reject the whole scrape: refuse the report instead.
    if len({fs.mountpoint for fs in report.filesystems}) != len(report.filesystems) or len(
        {s.name for s in report.sources}
    ) != len(report.sources):
        raise Rejection(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_report",
            f"report {report.sequence}: a mountpoint or source appears twice",
        )
    if len(report.events) > limits.max_events_per_report:
        raise Rejection(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too_large",
            f"report {report.sequence}: {len(report.events)} events; at most "
            f"{limits.max_events_per_report}",
        )
    if not within_limits(report, limits.max_string, limits.max_entries):
        problem = first_problem(report, limits.max_string, limits.max_entries, "report")
        raise Rejection(
            grpc.StatusCode.INVALID_ARGUMENT,
            "too_large",
            f"report {report.sequence}: {problem or 'a field breaks a limit'}",
        )
    validate_storage(report)
    # An implausible event time does not refuse the report (it is kept at the
    # report's time and tagged time_adjusted): one odd log line must not cost
    # every other event in the report.
    validate_events(report, limits.max_string)
