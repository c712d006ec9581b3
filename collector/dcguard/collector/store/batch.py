"""What a batch does to an agent's counters, whatever the engine: the exactly-once rule.

A report is new if its sequence is above the highest stored for the
agent's current instance (a reinstalled agent, with a new instance id,
starts again from 0); every sequence skipped between two new ones is lost,
unless the agent says a collector acknowledged it (its acked_sequence):
then another collector, with a store of its own, took it, and it is
counted as acknowledged elsewhere instead. A sequence more than
MAX_SEQUENCE_JUMP above the last is refused (SequenceRefused), on every engine.
Each engine reads the agent's row under its own lock, asks plan() what to
store, and writes the record() back in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dcguard.collector.identity import PeerIdentity
from dcguard.collector.store.model import AgentRecord
from dcguard.v1 import collector_pb2 as pb

__all__ = ["MAX_SEQUENCE_JUMP", "Counters", "Plan", "SequenceRefused", "plan", "record"]

# How far one report's sequence may lie above the host's last (or above 0
# for a new agent instance): a billion reports is 475 years at 15 s. More is
# a corrupt or forged sequence, which would count a billion reports lost and
# make every later report of the instance a duplicate.
MAX_SEQUENCE_JUMP = 1_000_000_000


class SequenceRefused(Exception):
    """A batch whose content can never be stored: the engine refuses it for good.

    Raised by plan() inside the engine's savepoint; the engine turns it into
    StoreError(transient=False, reason=self.reason).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Counters:
    """What a batch needs of the agent's stored row."""

    first_seen: float
    max_sequence: int
    reports_stored: int
    reports_lost: int
    instance_id: str
    revision: int = 0  # engines with a shared store keep one (model.AgentRecord.revision)


@dataclass(frozen=True)
class Plan:
    new: list[pb.Report]  # to store, by sequence
    duplicates: int
    acknowledged_elsewhere: int
    max_sequence: int
    reports_stored: int
    reports_lost: int


def plan(
    row: Counters | None, instance_id: str, reports: Sequence[pb.Report], acked_sequence: int = 0
) -> Plan:
    """Which reports of a batch are new, and the agent's counters once they are stored."""
    max_sequence = stored_total = lost_total = 0
    if row is not None:
        stored_total, lost_total = row.reports_stored, row.reports_lost
        if row.instance_id == instance_id:
            max_sequence = row.max_sequence
    new: list[pb.Report] = []
    duplicates = elsewhere = 0
    for report in sorted(reports, key=lambda r: r.sequence):
        if report.sequence <= max_sequence:
            duplicates += 1
            continue
        if report.sequence - max_sequence > MAX_SEQUENCE_JUMP:
            raise SequenceRefused(
                "invalid_report",
                (
                    f"report {report.sequence}: sequence jumps more than {MAX_SEQUENCE_JUMP} "
                    f"above the host's last ({max_sequence})"
                ),
            )
        # Of the skipped sequences, those up to the agent's acked_sequence were taken.
        taken = max(max_sequence, min(acked_sequence, report.sequence - 1))
        elsewhere += taken - max_sequence
        lost_total += report.sequence - 1 - taken
        max_sequence = report.sequence
        new.append(report)
    return Plan(new, duplicates, elsewhere, max_sequence, stored_total + len(new), lost_total)


def record(
    row: Counters | None,
    identity: PeerIdentity,
    agent: pb.AgentInfo,
    done: Plan,
    received_at: float,
    latest: pb.Report | None,
    revision: int = 0,
    clock_skew_seconds: float = 0.0,
) -> AgentRecord:
    """The agent's stored record after a batch."""
    return AgentRecord(
        host=identity.host,
        department=identity.department,
        agent_version=agent.agent_version,
        os=agent.os,
        kernel=agent.kernel,
        interval_seconds=agent.interval_seconds,
        instance_id=agent.instance_id,
        first_seen=row.first_seen if row is not None else received_at,
        last_seen=received_at,
        max_sequence=done.max_sequence,
        reports_stored=done.reports_stored,
        reports_lost=done.reports_lost,
        latest=latest,
        revision=revision,
        clock_skew_seconds=clock_skew_seconds,
    )
