"""Checking a report's security events before anything is stored.

The event type becomes a metric label, so it is held to a short identifier:
a hostile agent cannot blow up the series count with made-up types, nor put
newlines or quotes into the exposition.
"""

from __future__ import annotations

import re

import grpc

from dcguard.collector.errors import Rejection
from dcguard.v1 import collector_pb2 as pb

__all__ = ["MAX_EVENTS_PER_REPORT", "validate_events"]

MAX_EVENTS_PER_REPORT = 10000
MAX_DETAILS = 32
MAX_TAGS = 32
TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
TECHNIQUE = re.compile(r"(T[0-9]{4}(\.[0-9]{3})?)?")


def _invalid(report: pb.Report, problem: str, reason: str = "invalid_report") -> Rejection:
    code = (
        grpc.StatusCode.RESOURCE_EXHAUSTED
        if reason == "too_large"
        else grpc.StatusCode.INVALID_ARGUMENT
    )
    return Rejection(code, reason, f"report {report.sequence}: {problem}")


def validate_events(report: pb.Report, max_string: int) -> None:
    """Raise Rejection for the first malformed event of a report.

    An implausible event time is not a reason to refuse the report (it would
    hold the host's other data back): storage replaces it, see storage.py.
    """
    if len(report.events) > MAX_EVENTS_PER_REPORT:
        raise _invalid(
            report, f"{len(report.events)} events; at most {MAX_EVENTS_PER_REPORT}", "too_large"
        )
    for index, event in enumerate(report.events):
        where = f"event {index}"
        if not TYPE.fullmatch(event.type):
            raise _invalid(report, f"{where}: type must be a lower-case identifier")
        if not 0 <= event.severity <= pb.SEVERITY_CRITICAL:
            raise _invalid(report, f"{where}: unknown severity {event.severity}")
        if not TECHNIQUE.fullmatch(event.technique):
            raise _invalid(report, f"{where}: technique must look like T1110 or T1548.003")
        texts = (
            event.user,
            event.source_address,
            event.process,
            event.raw,
            event.source,
            event.path,
            event.protocol,
            *event.tags,
            *event.details.keys(),
            *event.details.values(),
        )
        if any(len(text) > max_string for text in texts):
            raise _invalid(report, f"{where}: a field is longer than {max_string}", "too_large")
        if len(event.details) > MAX_DETAILS or len(event.tags) > MAX_TAGS:
            raise _invalid(report, f"{where}: too many details or tags", "too_large")
        if event.port > 65535:
            raise _invalid(report, f"{where}: port {event.port} is out of range")
