"""Storing security events exactly once, reading them back, and pruning them after retention.

Events are written by EventHook inside the transaction that stores their
report (Store runs hooks only for new reports), so a resent batch never
stores an event twice and a failed store never leaves half of one. Per-host
counts by (type, severity) are kept in the same transaction: the metrics are
read from them, so they survive restarts and never go backwards, even when
old events are pruned.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol

from dcguard.collector.security.model import (
    StoredEvent,
    event_from_row,
    severity_name,
    severity_rank,
)
from dcguard.collector.store import Migration
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "FAILURES_WHERE", "SECURITY_SCHEMA", "EventHook", "EventQuery", "Pruner", "connect",
    "events_after", "insert_event", "query_events",
]

log = logging.getLogger(__name__)

# Written identically in the queries, so SQLite can use the partial index.
FAILURES_WHERE = "type IN ('ssh_login_failed', 'ssh_invalid_user') AND detection = 0"

SECURITY_SCHEMA: Migration = ("security-events-v1", (
    """
    CREATE TABLE security_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        event_time REAL NOT NULL,
        received_at REAL NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        technique TEXT NOT NULL DEFAULT '',
        user TEXT NOT NULL DEFAULT '',
        source_address TEXT NOT NULL DEFAULT '',
        process TEXT NOT NULL DEFAULT '',
        raw TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL DEFAULT '',
        port INTEGER NOT NULL DEFAULT 0,
        protocol TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        details TEXT NOT NULL DEFAULT '{}',
        detection INTEGER NOT NULL DEFAULT 0
    )
    """,
    # `events --host H --since`, the per-host windows of the detections.
    "CREATE INDEX security_events_host_time ON security_events (host, event_time)",
    # `events --since` across hosts, and retention pruning.
    "CREATE INDEX security_events_time ON security_events (event_time)",
    # `events --min-severity high` over a long period.
    "CREATE INDEX security_events_severity_time ON security_events (severity, event_time)",
    # Accepted logins from one source in a time range.
    "CREATE INDEX security_events_source_time ON security_events (source_address, event_time)",
    # Brute-force and distributed-attack windows: a partial index of failed
    # logins only, so a window is a few index seeks even in a flood.
    f"CREATE INDEX security_failures ON security_events (source_address, host, event_time) "
    f"WHERE {FAILURES_WHERE}",
    # Suppression and success-after-failures look up the few detections.
    "CREATE INDEX security_detections ON security_events (type, event_time) "
    "WHERE detection = 1",
    # New privileged account: one user on one host.
    "CREATE INDEX security_events_user ON security_events (host, user, event_time)",
    """
    CREATE TABLE security_event_counts (
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        detection INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (host, type, severity, detection)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE security_forward_cursors (
        destination TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    )
    """,
))

_INSERT = (
    "INSERT INTO security_events (host, event_time, received_at, type, severity, technique, "
    "user, source_address, process, raw, source, path, port, protocol, tags, details, "
    "detection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT = (
    "INSERT INTO security_event_counts VALUES (?, ?, ?, ?, 1) "
    "ON CONFLICT (host, type, severity, detection) DO UPDATE SET count = count + 1"
)
# Events are read joined to the agents table for the host's department.
SELECT_EVENTS = (
    "SELECT e.id, e.host, COALESCE(a.department, ''), e.event_time, e.received_at, e.type, "
    "e.severity, e.technique, e.user, e.source_address, e.process, e.raw, e.source, e.path, "
    "e.port, e.protocol, e.tags, e.details, e.detection "
    "FROM security_events e LEFT JOIN agents a ON a.host = e.host"
)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection of its own to the collector database (WAL lets it read beside the writer)."""
    if readonly:
        if not path.exists():
            raise sqlite3.OperationalError(f"no collector database at {path}")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=5000")
    return db


def insert_event(db: sqlite3.Connection, event: StoredEvent) -> StoredEvent:
    """Insert and count one event inside the caller's transaction; returns it with its id."""
    rank = severity_rank(event.severity)
    cursor = db.execute(_INSERT, (
        event.host, event.time, event.received_at, event.type, rank, event.technique,
        event.user, event.source_address, event.process, event.raw, event.source, event.path,
        event.port, event.protocol, json.dumps(list(event.tags)),
        json.dumps(event.details, sort_keys=True), int(event.detection),
    ))
    db.execute(_COUNT, (event.host, event.type, rank, int(event.detection)))
    return replace(event, id=int(cursor.lastrowid or 0))


# Event times further from the report's own time than this are a parsing or
# clock error on the host (a year guessed wrong for a classic syslog line):
# the event is kept, at the report's time, tagged so the analyst knows.
MAX_EVENT_AGE = 400 * 86400.0
MAX_EVENT_AHEAD = 3600.0
TIME_ADJUSTED_TAG = "time_adjusted"


def from_proto(host: str, event: pb.SecurityEvent, report: pb.Report,
               received_at: float) -> StoredEvent:
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
        id=0, host=host, department="", time=when,
        received_at=received_at, type=event.type, severity=severity_name(event.severity),
        technique=event.technique, user=event.user, source_address=event.source_address,
        process=event.process, raw=event.raw, source=event.source, path=event.path,
        port=event.port, protocol=event.protocol, tags=tags,
        details=details, detection=False,
    )


class Judge(Protocol):
    """Something that looks at each newly stored event inside the storing transaction."""

    def judge(self, db: sqlite3.Connection, event: StoredEvent) -> None: ...


class EventHook:
    """The ReportHook that stores a new report's events, then lets the detections judge them."""

    def __init__(self, judges: Sequence[Judge] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._judges = tuple(judges)
        self._clock = clock

    def on_stored(self, db: sqlite3.Connection, host: str, report: pb.Report) -> None:
        if not report.events:
            return
        received_at = self._clock()
        # Every event of the report is stored before any is judged, so a
        # window sees the whole report whatever order its events came in.
        events = sorted((from_proto(host, e, report, received_at) for e in report.events),
                        key=lambda e: e.time)
        stored = [insert_event(db, event) for event in events]
        for event in stored:
            for judge in self._judges:
                try:
                    judge.judge(db, event)
                except sqlite3.Error:
                    raise  # the store rolls the report back; the agent resends it
                except Exception:  # a bug in a rule must not stop events being stored
                    log.exception("detection failed on event %d of %s", event.id, host)


class EventQuery:
    """Filters for reading events back (the events command)."""

    def __init__(self, host: str | None = None, since: float | None = None,
                 min_severity: str = "info", limit: int = 100) -> None:
        self.host = host
        self.since = since
        self.min_rank = severity_rank(min_severity)
        self.limit = limit


def query_events(db: sqlite3.Connection, query: EventQuery) -> list[StoredEvent]:
    """The newest `limit` events matching the query, oldest first."""
    where = ["e.severity >= ?"]
    args: list[Any] = [query.min_rank]
    if query.host is not None:
        where.append("e.host = ?")
        args.append(query.host)
    if query.since is not None:
        where.append("e.event_time >= ?")
        args.append(query.since)
    sql = (f"{SELECT_EVENTS} WHERE {' AND '.join(where)} "
           "ORDER BY e.event_time DESC, e.id DESC LIMIT ?")
    rows = db.execute(sql, (*args, query.limit)).fetchall()
    return [event_from_row(row) for row in reversed(rows)]


def events_after(db: sqlite3.Connection, last_id: int, limit: int) -> list[StoredEvent]:
    """Events stored after last_id, in storing order (the forwarder's read)."""
    rows = db.execute(f"{SELECT_EVENTS} WHERE e.id > ? ORDER BY e.id LIMIT ?",
                      (last_id, limit)).fetchall()
    return [event_from_row(row) for row in rows]


class Pruner:
    """Deletes events older than the retention, in small transactions, on its own thread.

    Events a forwarding destination has not yet sent are kept whatever their
    age: retention never loses an event the SIEM has not seen.
    """

    BATCH = 5000

    def __init__(self, path: Path, retention: float, interval: float,
                 forward_destinations: Sequence[str] = (),
                 on_pruned: Callable[[int], None] = lambda n: None,
                 clock: Callable[[], float] = time.time) -> None:
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
        db = connect(self._path)
        try:
            while not self._stop.is_set():
                try:
                    self.prune_once(db)
                except sqlite3.Error as exc:
                    log.warning("pruning old security events failed, will retry: %s", exc)
                except Exception:  # the thread must outlive any bug (logged with its traceback)
                    log.exception("pruning old security events failed unexpectedly")
                self._stop.wait(self._interval)
        finally:
            db.close()

    def prune_once(self, db: sqlite3.Connection) -> int:
        """Delete what is past retention (and already forwarded); returns the number deleted."""
        cutoff = self._clock() - self._retention
        bound = _forwarded_bound(db, self._destinations)
        total = 0
        while not self._stop.is_set():
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = db.execute(
                    "DELETE FROM security_events WHERE id IN (SELECT id FROM security_events "
                    "WHERE event_time < ? AND id <= ? LIMIT ?)",
                    (cutoff, bound, self.BATCH)).rowcount
                db.execute("COMMIT")
            except sqlite3.Error:
                db.execute("ROLLBACK")
                raise
            total += deleted
            if deleted < self.BATCH:
                break
        if total:
            self._on_pruned(total)
            log.info("pruned %d security events older than the retention", total)
        return total


def _forwarded_bound(db: sqlite3.Connection, destinations: Sequence[str]) -> int:
    """The highest event id every forwarding destination has sent (no forwarding: no bound)."""
    bound = 2 ** 62
    for name in destinations:
        row = db.execute("SELECT last_id FROM security_forward_cursors WHERE destination = ?",
                         (name,)).fetchone()
        bound = min(bound, row[0] if row else 0)
    return bound
