"""Per-host security metrics: stored events and detections by type, and the agent's parse stats.

Event counts are read from security_event_counts, which is written in the
storing transaction: they match what is stored, are whole after a restart
and never go backwards when old events are pruned. They are read when the
host's record changes (after each stored batch), never at scrape time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from dcguard.collector.events import severity_name
from dcguard.collector.exposition.families import AddSample
from dcguard.collector.exposition.text import Family
from dcguard.collector.security.detect import DETECTIONS
from dcguard.collector.store import (
    AgentRecord,
    Database,
    EventStore,
    StoreError,
    open_event_store,
)

__all__ = ["SecurityGroup"]

log = logging.getLogger(__name__)

_STATS = (
    (
        "dcguard_security_agent_lines_read_total",
        "lines_read",
        "Log lines the agent's security sources read (since the agent started).",
    ),
    (
        "dcguard_security_agent_lines_unrecognised_total",
        "lines_unrecognised",
        "Log lines the agent skipped because no rule recognised them (since the agent started).",
    ),
    (
        "dcguard_security_agent_lines_oversized_total",
        "lines_oversized",
        "Log lines the agent capped because they were too long (since the agent started).",
    ),
    (
        "dcguard_security_agent_events_deferred_total",
        "events_deferred",
        "Events the agent held for a later report by its per-report cap (since it started).",
    ),
)


class SecurityGroup:
    families: tuple[Family, ...] = (
        Family(
            "dcguard_security_events_total",
            "counter",
            "Security events stored for this host, by type and severity (detections included).",
        ),
        Family(
            "dcguard_security_detections_total",
            "counter",
            "Detections the collector raised for this host, by detection.",
        ),
        *(Family(name, "counter", text) for name, _, text in _STATS),
    )
    live_families: tuple[Family, ...] = ()

    def __init__(self, database: Database) -> None:
        self._database = database
        self._events: EventStore | None = None
        self._lock = threading.Lock()
        self._prefetched: dict[str, list[tuple[str, int, int, int]]] | None = None

    def _query(self, host: str | None) -> list[tuple[str, str, int, int, int]]:
        # Called with the lock held. None: every host.
        if self._events is None:
            self._events = open_event_store(self._database, readonly=True)
        return self._events.event_counts(host)

    def _counts(self, host: str) -> list[tuple[str, int, int, int]]:
        with self._lock:
            if self._prefetched is not None:
                return self._prefetched.get(host, [])
            try:
                return [row[1:] for row in self._query(host)]
            except StoreError as exc:
                # No table yet (a store opened without the security schema) or
                # a locked file: the samples are missing this time, not wrong.
                log.warning("cannot read security event counts for %s: %s", host, exc)
                return []

    @contextmanager
    def prefetched(self) -> Iterator[None]:
        """Every host's counts read in one query, for rendering every host at start.

        Only while nothing else writes counts (before the server accepts
        reports): inside, render() reads the counts read on entry.
        """
        counts: dict[str, list[tuple[str, int, int, int]]] = {}
        with self._lock:
            try:
                for host, type_, severity, detection, count in self._query(None):
                    counts.setdefault(host, []).append((type_, severity, detection, count))
            except StoreError as exc:
                log.warning("cannot read security event counts: %s", exc)
            self._prefetched = counts
        try:
            yield
        finally:
            with self._lock:
                self._prefetched = None

    def key(self, record: AgentRecord) -> Hashable | None:
        report = record.latest
        # A host's counts change only when a report of its own with events is
        # stored (detections are stored under the triggering event's host), so
        # without events the counts read last time still hold.
        if report is None or report.events:
            return None
        return report.security_stats.SerializeToString()

    def render(self, record: AgentRecord, add: AddSample) -> None:
        by_type: dict[tuple[str, str], int] = {}
        detections = dict.fromkeys(DETECTIONS, 0)
        for type_, rank, detection, count in self._counts(record.host):
            key = (type_, severity_name(rank))
            by_type[key] = by_type.get(key, 0) + count
            if detection:
                detections[type_] = detections.get(type_, 0) + count
        for (type_, severity), count in by_type.items():
            add("dcguard_security_events_total", (("type", type_), ("severity", severity)), count)
        for name, count in detections.items():
            add("dcguard_security_detections_total", (("detection", name),), count)
        report = record.latest
        if report is None or not report.HasField("security_stats"):
            return
        for name, field, _ in _STATS:
            add(name, (), getattr(report.security_stats, field))

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            if self._events is not None:
                self._events.close()
                self._events = None
