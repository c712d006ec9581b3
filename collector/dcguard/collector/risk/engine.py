"""The one risk engine behind /metrics, `dcguard-collector risk` and `agents`.

Score: the sum of the weights of the distinct active reasons, capped at 100.
A reason counts once however many jobs, disks or filesystems it names, so
one host with ten stale jobs does not outrank one with a failing disk and no
backup. A reason weighted 0 is switched off. Rules run once per state change
(prepare); the clock is applied at read time (assess), which costs a few
comparisons per finding.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dcguard.collector.liveness import staleness_window
from dcguard.collector.risk.config import REASONS, RiskConfig, Thresholds
from dcguard.collector.risk.history import FilesystemHistory
from dcguard.collector.risk.rules import Finding, evaluate, one_line
from dcguard.collector.store import AgentRecord

__all__ = ["Assessment", "Prepared", "RiskEngine", "Statement"]

log = logging.getLogger(__name__)
MAX_SCORE = 100


@dataclass(frozen=True)
class Statement:
    """An active finding as shown to people and scripts."""

    reason: str
    subject: str
    weight: int
    message: str


@dataclass(frozen=True)
class Assessment:
    host: str
    department: str
    score: int
    statements: tuple[Statement, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.reason for s in self.statements))


@dataclass(frozen=True)
class Prepared:
    """One record's findings and settings, computed once per state change."""

    record: AgentRecord
    thresholds: Thresholds
    findings: tuple[Finding, ...]
    # Reasons active whatever the time (a failing disk stays failing).
    always: frozenset[str]
    # Reasons whose state the clock can change before the next report.
    timed: frozenset[str]

    @classmethod
    def of(cls, record: AgentRecord, thresholds: Thresholds,
           findings: tuple[Finding, ...]) -> Prepared:
        always = frozenset(f.reason for f in findings if f.permanent)
        timed = frozenset(f.reason for f in findings if not f.permanent) - always
        return cls(record, thresholds, findings, always, timed)

    def active_reasons(self, now: float) -> frozenset[str]:
        return frozenset(f.reason for f in self.findings if f.active(now))

    def score(self, active: frozenset[str]) -> int:
        return min(MAX_SCORE, sum(self.thresholds.weights[r] for r in active))


class RiskEngine:
    """Evaluates hosts against the [risk] config and the filesystem history."""

    def __init__(self, config: RiskConfig, down_after_intervals: int,
                 history: FilesystemHistory | None = None) -> None:
        self.config = config
        self.down_after_intervals = down_after_intervals
        self.history = history or FilesystemHistory(config.history)
        self._prepared: dict[str, Prepared] = {}
        self._lock = threading.Lock()

    def prepare(self, record: AgentRecord) -> Prepared:
        """Run the rules for a record (cached until the host's record changes)."""
        with self._lock:
            cached = self._prepared.get(record.host)
        if cached is not None and cached.record is record:
            return cached
        th = self.config.for_host(record.host, record.department)
        silent_after = th.silent_after_seconds or staleness_window(
            record, self.down_after_intervals)
        try:
            findings = evaluate(record, th, self.history.trends(record.host), silent_after)
        except Exception:  # one odd report must not break /metrics for every host
            log.exception("risk rules failed for host %s; its reasons are unknown until its "
                          "next report", record.host)
            findings = []
        # Weight 0 switches a reason off for this scope: not scored, not shown.
        prepared = Prepared.of(record, th,
                               tuple(f for f in findings if th.weights[f.reason] > 0))
        with self._lock:
            self._prepared[record.host] = prepared
        return prepared

    def assess(self, record: AgentRecord, now: float) -> Assessment:
        """The score and the active findings' sentences as of now, worst reason first."""
        prepared = self.prepare(record)
        weights = prepared.thresholds.weights
        order = {reason: index for index, reason in enumerate(REASONS)}
        active = [f for f in prepared.findings if f.active(now)]
        active.sort(key=lambda f: (-weights[f.reason], order[f.reason], f.subject))
        statements = tuple(Statement(f.reason, one_line(f.subject), weights[f.reason],
                                     f.sentence(now))
                           for f in active)
        return Assessment(record.host, record.department,
                          prepared.score(frozenset(f.reason for f in active)), statements)

    def assess_all(self, records: list[AgentRecord], now: float) -> list[Assessment]:
        """Every host, worst first (score, then host name)."""
        assessments = [self.assess(r, now) for r in records]
        assessments.sort(key=lambda a: (-a.score, a.host))
        return assessments
