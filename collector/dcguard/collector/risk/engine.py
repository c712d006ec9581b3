"""The one risk engine behind /metrics, `dcguard-collector risk` and `agents`.

Score: the sum of the weights of the distinct active reasons, capped at 100.
A reason counts once however many jobs, disks or filesystems it names, so
one host with ten stale jobs does not outrank one with a failing disk and no
backup. For one subject (a job, a disk, an array, a mountpoint) only the most
severe active finding stands: a failing disk is "replace it now", not that
and "plan a replacement" beside it (DESIGN.md). A reason weighted 0 is
switched off. Rules run once per state change (prepare); the clock is applied
at read time (assess), which costs a few comparisons per finding.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dcguard.collector.liveness import staleness_window
from dcguard.collector.risk.config import REASONS, RiskConfig, Thresholds
from dcguard.collector.risk.history import FilesystemHistory
from dcguard.collector.risk.rules import Finding, evaluate, one_line
from dcguard.collector.risk.signs import RansomwareSigns
from dcguard.collector.store import AgentRecord, Database
from dcguard.common.i18n import DEFAULT, Language, language

__all__ = ["Assessment", "Prepared", "RiskEngine", "Statement", "standing"]

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


_ORDER = {reason: index for index, reason in enumerate(REASONS)}


def standing(findings: Iterable[Finding], now: float, weights: Mapping[str, int]) -> list[Finding]:
    """The active findings, one per subject: the heaviest (ties: the first in REASONS)."""
    best: dict[str, Finding] = {}
    for finding in findings:
        if not finding.active(now):
            continue
        held = best.get(finding.subject)
        if held is None or _severity(finding, weights) > _severity(held, weights):
            best[finding.subject] = finding
    return list(best.values())


def _severity(finding: Finding, weights: Mapping[str, int]) -> tuple[int, int]:
    return weights[finding.reason], -_ORDER[finding.reason]


@dataclass(frozen=True)
class Prepared:
    """One record's findings and settings, computed once per state change."""

    record: AgentRecord
    thresholds: Thresholds
    findings: tuple[Finding, ...]
    # Reasons standing whatever the time (a failing disk stays failing).
    always: frozenset[str]
    # Reasons whose state the clock can change before the next report.
    timed: frozenset[str]
    # Per subject whose standing finding the clock decides: its findings, most severe
    # first, up to the first without a time window (nothing after it can stand).
    timed_subjects: tuple[tuple[Finding, ...], ...]

    @classmethod
    def of(
        cls, record: AgentRecord, thresholds: Thresholds, findings: tuple[Finding, ...]
    ) -> Prepared:
        subjects: dict[str, list[Finding]] = {}
        for finding in findings:
            subjects.setdefault(finding.subject, []).append(finding)
        always: set[str] = set()
        timed_subjects = []
        for group in subjects.values():
            ranked = sorted(group, key=lambda f: _severity(f, thresholds.weights), reverse=True)
            if ranked[0].permanent:
                always.add(ranked[0].reason)  # the heaviest is always active: it stands
                continue
            cut = next((i for i, f in enumerate(ranked) if f.permanent), len(ranked) - 1)
            timed_subjects.append(tuple(ranked[: cut + 1]))
        timed = frozenset(f.reason for group in timed_subjects for f in group) - always
        return cls(record, thresholds, findings, frozenset(always), timed, tuple(timed_subjects))

    def active_reasons(self, now: float) -> frozenset[str]:
        """The reasons of the standing findings as of now (what a scrape computes)."""
        active = set(self.always)
        for ranked in self.timed_subjects:
            for finding in ranked:
                if finding.active(now):
                    active.add(finding.reason)
                    break
        return frozenset(active)

    def score(self, active: frozenset[str]) -> int:
        return min(MAX_SCORE, sum(self.thresholds.weights[r] for r in active))


class RiskEngine:
    """Evaluates hosts against the [risk] config and the filesystem history."""

    def __init__(
        self,
        config: RiskConfig,
        down_after_intervals: int,
        history: FilesystemHistory | None = None,
    ) -> None:
        self.config = config
        self.down_after_intervals = down_after_intervals
        self.history = history or FilesystemHistory(config.history)
        self.signs = RansomwareSigns()
        self._prepared: dict[str, Prepared] = {}
        self._lock = threading.Lock()

    def load(self, database: Database) -> None:
        """Read the stored filesystem history and ransomware signs (at start, in the CLI)."""
        self.history.load(database)
        self.signs.load(database, self.config.longest_ransomware_window)

    def prepare(self, record: AgentRecord) -> Prepared:
        """Run the rules for a record (cached until the host's record changes)."""
        with self._lock:
            cached = self._prepared.get(record.host)
        if cached is not None and cached.record is record:
            return cached
        th = self.config.for_host(record.host, record.department)
        silent_after = th.silent_after_seconds or staleness_window(
            record, self.down_after_intervals
        )
        try:
            findings = evaluate(
                record,
                th,
                self.history.trends(record.host),
                silent_after,
                self.signs.newest(record.host),
            )
        except Exception:  # one odd report must not break /metrics for every host
            log.exception(
                "risk rules failed for host %s; its reasons are unknown until its next report",
                record.host,
            )
            findings = []
        # Weight 0 switches a reason off for this scope: not scored, not shown.
        prepared = Prepared.of(record, th, tuple(f for f in findings if th.weights[f.reason] > 0))
        with self._lock:
            self._prepared[record.host] = prepared
        return prepared

    def assess(self, record: AgentRecord, now: float, lang: Language | None = None) -> Assessment:
        """The score and the active findings' sentences as of now, worst reason first,
        in lang (English by default: reason codes and scores never depend on it)."""
        lang = lang or language(DEFAULT)
        prepared = self.prepare(record)
        weights = prepared.thresholds.weights
        active = standing(prepared.findings, now, weights)
        active.sort(key=lambda f: (-weights[f.reason], _ORDER[f.reason], f.subject))
        statements = tuple(
            Statement(f.reason, one_line(f.subject), weights[f.reason], f.sentence(now, lang))
            for f in active
        )
        return Assessment(
            record.host,
            record.department,
            prepared.score(frozenset(f.reason for f in active)),
            statements,
        )

    def assess_all(
        self, records: list[AgentRecord], now: float, lang: Language | None = None
    ) -> list[Assessment]:
        """Every host, worst first (score, then host name)."""
        assessments = [self.assess(r, now, lang) for r in records]
        assessments.sort(key=lambda a: (-a.score, a.host))
        return assessments
