"""Storing security events exactly once, and pruning them after retention (through the store).

Events are written by EventHook inside the transaction that stores their
report (the store runs hooks only for new reports), so a resent batch never
stores an event twice and a failed store never leaves half of one. Per-host
counts by (type, severity) are kept in the same transaction: the metrics are
read from them, so they survive restarts and never go backwards, even when
old events are pruned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Callable, Protocol

from dcguard.collector.events import StoredEvent, severity_name, severity_rank
from dcguard.collector.store import (
    Database,
    EventStore,
    EventTransaction,
    StoreError,
    Transaction,
    open_event_store,
)
from dcguard.v1 import collector_pb2 as pb

__all__ = ["EventHook", "EventQuery", "Judge", "Pruner", "from_proto", "query_events"]

log = logging.getLogger(__name__)


# Event times further from the report's own time than this are a parsing or
# clock error on the host (a year guessed wrong for a classic syslog line):
# the event is kept, at the report's time, tagged so the analyst knows.
MAX_EVENT_AGE = 400 * 86400.0
MAX_EVENT_AHEAD = 3600.0
TIME_ADJUSTED_TAG = "time_adjusted"


def from_proto(
    host: str, event: pb.SecurityEvent, report: pb.Report, received_at: float
) -> StoredEvent:
    """An agent's event as it will be stored (never a detection, whatever its source says)."""
    when = event.time.seconds + event.time.nanos / 1e9
    tags = tuple(event.tags)
    details = dict(event.details)
    collected = report.collected_at.seconds + report.collected_at.nanos / 1e9
    if not collected - MAX_EVENT_AGE <= when <= collected + MAX_EVENT_AHEAD:
        details["original_time"] = f"{when:.3f}"
        tags = (*tags, TIME_ADJUSTED_TAG)
        when = collected
    return StoredEvent(
        id=0,
        host=host,
        department="",
        time=when,
        received_at=received_at,
        type=event.type,
        severity=severity_name(event.severity),
        technique=event.technique,
        user=event.user,
        source_address=event.source_address,
        process=event.process,
        raw=event.raw,
        source=event.source,
        path=event.path,
        port=event.port,
        protocol=event.protocol,
        tags=tags,
        details=details,
        detection=False,
    )


class Judge(Protocol):
    """Something that looks at each newly stored event inside the storing transaction."""

    def judge(self, tx: EventTransaction, event: StoredEvent) -> None: ...


class EventHook:
    """The ReportHook that stores a new report's events, then lets the detections judge them."""

    def __init__(
        self, judges: Sequence[Judge] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self._judges = tuple(judges)
        self._clock = clock

    def on_stored(self, tx: Transaction, host: str, report: pb.Report) -> None:
        if not report.events:
            return
        received_at = self._clock()
        # Every event of the report is stored before any is judged, so a
        # window sees the whole report whatever order its events came in.
        events = sorted(
            (from_proto(host, e, report, received_at) for e in report.events), key=lambda e: e.time
        )
        stored = [tx.insert_event(event) for event in events]
        for event in stored:
            for judge in self._judges:
                try:
                    judge.judge(tx, event)
                except StoreError:
                    raise  # the store rolls the report back; the agent resends it
                except Exception:  # a bug in a rule must not stop events being stored
                    log.exception("detection failed on event %d of %s", event.id, host)


class EventQuery:
    """Filters for reading events back (the events command)."""

    def __init__(
        self,
        host: str | None = None,
        since: float | None = None,
        min_severity: str = "info",
        limit: int = 100,
    ) -> None:
        self.host = host
        self.since = since
        self.min_rank = severity_rank(min_severity)
        self.limit = limit


def query_events(events: EventStore, query: EventQuery) -> list[StoredEvent]:
    """The newest `limit` events matching the query, oldest first."""
    return events.query_events(query.host, query.since, query.min_rank, query.limit)


class Pruner:
    """Deletes events older than the retention, in small transactions, on its own thread.

    Events a forwarding destination has not yet sent are kept whatever their
    age: retention never loses an event the SIEM has not seen.
    """

    BATCH = 5000

    def __init__(
        self,
        path: Database,
        retention: float,
        interval: float,
        forward_destinations: Sequence[str] = (),
        on_pruned: Callable[[int], None] = lambda n: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._retention = retention
        self._interval = interval
        self._destinations = tuple(forward_destinations)
        self._on_pruned = on_pruned
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-pruner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        events = open_event_store(self._path)
        try:
            while not self._stop.is_set():
                try:
                    self.prune_once(events)
                except StoreError as exc:
                    log.warning("pruning old security events failed, will retry: %s", exc)
                except Exception:  # the thread must outlive any bug (logged with its traceback)
                    log.exception("pruning old security events failed unexpectedly")
                self._stop.wait(self._interval)
        finally:
            events.close()

    def prune_once(self, events: EventStore) -> int:
        """Delete what is past retention (and already forwarded); returns the number deleted."""
        cutoff = self._clock() - self._retention
        bound = events.forwarded_bound(self._destinations)
        total = 0
        while not self._stop.is_set():
            deleted = events.delete_events_before(cutoff, bound, self.BATCH)
            total += deleted
            if deleted < self.BATCH:
                break
        if total:
            self._on_pruned(total)
            log.info("pruned %d security events older than the retention", total)
        return total
