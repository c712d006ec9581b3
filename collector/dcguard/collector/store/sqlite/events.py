"""Security events in SQLite: inserting and counting, the detections' windows, reading, pruning.

Writes inside the storing transaction go through EventWrites (a part of
the Transaction a ReportHook gets); reads and pruning outside it go
through SqliteEvents, a connection of its own per thread or CLI (WAL lets
it read beside the writer).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dcguard.collector.events import SEVERITIES, StoredEvent, severity_rank
from dcguard.collector.store.sqlite.connection import (
    Connection,
    connect,
    translated,
    write_transaction,
)
from dcguard.collector.store.sqlite.schema import FAILURES_WHERE

__all__ = ["EventWrites", "SqliteEvents"]

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
_SELECT_EVENTS = (
    "SELECT e.id, e.host, COALESCE(a.department, ''), e.event_time, e.received_at, e.type, "
    "e.severity, e.technique, e.user, e.source_address, e.process, e.raw, e.source, e.path, "
    "e.port, e.protocol, e.tags, e.details, e.detection "
    "FROM security_events e LEFT JOIN agents a ON a.host = e.host"
)
# Failed logins of one source on one host, through the partial index.
_FAILS = (
    f"FROM security_events INDEXED BY security_failures WHERE {FAILURES_WHERE} "
    "AND source_address = ? AND host = ?"
)
_DETECTIONS = "FROM security_events INDEXED BY security_detections WHERE detection = 1"
# The columns a detection may be matched on (detection_near's keys).
_MATCHABLE = frozenset({"host", "source_address", "user"})
_ALL_COUNTS = (
    "SELECT host, type, severity, detection, count FROM security_event_counts "
    "ORDER BY host, type, severity"
)
_HOST_COUNTS = (
    "SELECT host, type, severity, detection, count FROM security_event_counts "
    "WHERE host = ? ORDER BY type, severity"
)


def _event(row: tuple[Any, ...]) -> StoredEvent:
    """A StoredEvent from a row of _SELECT_EVENTS."""
    (
        event_id,
        host,
        department,
        event_time,
        received_at,
        type_,
        severity,
        technique,
        user,
        source_address,
        process,
        raw,
        source,
        path,
        port,
        protocol,
        tags,
        details,
        detection,
    ) = row
    return StoredEvent(
        id=event_id,
        host=host,
        department=department,
        time=event_time,
        received_at=received_at,
        type=type_,
        severity=SEVERITIES[severity] if 0 <= severity < len(SEVERITIES) else "info",
        technique=technique,
        user=user,
        source_address=source_address,
        process=process,
        raw=raw,
        source=source,
        path=path,
        port=port,
        protocol=protocol,
        tags=tuple(json.loads(tags)),
        details=dict(json.loads(details)),
        detection=bool(detection),
    )


def _json_details(text: str) -> dict[str, str]:
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class EventWrites:
    """The events part of the storing transaction (see interface.EventTransaction)."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    @translated
    def insert_event(self, event: StoredEvent) -> StoredEvent:
        rank = severity_rank(event.severity)
        cursor = self._db.execute(
            _INSERT,
            (
                event.host,
                event.time,
                event.received_at,
                event.type,
                rank,
                event.technique,
                event.user,
                event.source_address,
                event.process,
                event.raw,
                event.source,
                event.path,
                event.port,
                event.protocol,
                json.dumps(list(event.tags)),
                json.dumps(event.details, sort_keys=True),
                int(event.detection),
            ),
        )
        self._db.execute(_COUNT, (event.host, event.type, rank, int(event.detection)))
        return replace(event, id=int(cursor.lastrowid or 0))

    @translated
    def failure_times_before(
        self,
        source_address: str,
        host: str,
        type_: str,
        exclude_id: int,
        start: float,
        end: float,
        limit: int,
    ) -> list[float]:
        return [
            r[0]
            for r in self._db.execute(
                f"SELECT event_time {_FAILS} AND type = ? AND id != ? "
                "AND event_time BETWEEN ? AND ? ORDER BY event_time DESC LIMIT ?",
                (source_address, host, type_, exclude_id, start, end, limit),
            )
        ]

    @translated
    def failure_times_after(
        self,
        source_address: str,
        host: str,
        type_: str,
        exclude_id: int,
        after: float,
        until: float,
        limit: int,
    ) -> list[float]:
        return [
            r[0]
            for r in self._db.execute(
                f"SELECT event_time {_FAILS} AND type = ? AND id != ? AND event_time > ? "
                "AND event_time <= ? ORDER BY event_time LIMIT ?",
                (source_address, host, type_, exclude_id, after, until, limit),
            )
        ]

    @translated
    def count_failures(
        self, source_address: str, host: str, type_: str, start: float, end: float
    ) -> int:
        return int(
            self._db.execute(
                f"SELECT COUNT(*) {_FAILS} AND type = ? AND event_time BETWEEN ? AND ?",
                (source_address, host, type_, start, end),
            ).fetchone()[0]
        )

    @translated
    def latest_failure(
        self, source_address: str, host: str, start: float, end: float
    ) -> float | None:
        row = self._db.execute(
            f"SELECT MAX(event_time) {_FAILS} AND event_time BETWEEN ? AND ?",
            (source_address, host, start, end),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    @translated
    def earliest_failure(
        self, source_address: str, host: str, start: float, end: float
    ) -> float | None:
        row = self._db.execute(
            f"SELECT MIN(event_time) {_FAILS} AND event_time BETWEEN ? AND ?",
            (source_address, host, start, end),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    @translated
    def next_failed_host(self, source_address: str, after_host: str) -> str | None:
        # One seek through the partial index per host.
        row = self._db.execute(
            f"SELECT host FROM security_events INDEXED BY security_failures "
            f"WHERE {FAILURES_WHERE} AND source_address = ? AND host > ? "
            "ORDER BY host LIMIT 1",
            (source_address, after_host),
        ).fetchone()
        return None if row is None else str(row[0])

    @translated
    def latest_detection_from(
        self, source_address: str, kinds: Sequence[str], start: float, end: float
    ) -> tuple[str, str] | None:
        marks = ", ".join("?" * len(kinds))
        row = self._db.execute(
            f"SELECT type, host, event_time {_DETECTIONS} AND source_address = ? "
            f"AND type IN ({marks}) "
            "AND event_time BETWEEN ? AND ? ORDER BY event_time DESC LIMIT 1",
            (source_address, *kinds, start, end),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    @translated
    def accepted_logins_from(
        self, source_address: str, start: float, end: float, limit: int
    ) -> list[StoredEvent]:
        rows = self._db.execute(
            "SELECT id, host, event_time, user, process, type FROM security_events "
            "WHERE source_address = ? AND type = 'ssh_login_accepted' AND detection = 0 "
            "AND event_time BETWEEN ? AND ? ORDER BY event_time LIMIT ?",
            (source_address, start, end, limit),
        ).fetchall()
        return [
            StoredEvent(
                id=event_id,
                host=host,
                department="",
                time=when,
                received_at=0.0,
                type=type_,
                severity="info",
                user=user,
                source_address=source_address,
                process=process,
            )
            for event_id, host, when, user, process, type_ in rows
        ]

    @translated
    def grants_of(
        self, host: str, user: str, start: float, end: float
    ) -> list[tuple[float, dict[str, str]]]:
        rows = self._db.execute(
            "SELECT event_time, details FROM security_events WHERE host = ? AND user = ? "
            "AND type IN ('group_member_added', 'user_modified') AND detection = 0 "
            "AND event_time BETWEEN ? AND ? ORDER BY event_time",
            (host, user, start, end),
        ).fetchall()
        return [(when, _json_details(details)) for when, details in rows]

    @translated
    def user_created_between(self, host: str, user: str, start: float, end: float) -> bool:
        row = self._db.execute(
            "SELECT event_time FROM security_events WHERE host = ? AND user = ? "
            "AND type = 'user_created' AND detection = 0 AND event_time BETWEEN ? AND ? "
            "ORDER BY event_time DESC LIMIT 1",
            (host, user, start, end),
        ).fetchone()
        return row is not None

    @translated
    def hosts_with_events(
        self, kinds: Sequence[str], min_rank: int, start: float, end: float, limit: int
    ) -> dict[str, tuple[float, float]]:
        # Through the (severity, event_time) index: the kinds asked for are rare and
        # severe, a window of them is a short range scan even during a login flood.
        marks = ", ".join(["?"] * len(kinds))
        rows = self._db.execute(
            "SELECT host, MIN(event_time), MAX(event_time) FROM security_events "
            "INDEXED BY security_events_severity_time "
            "WHERE severity >= ? AND event_time BETWEEN ? AND ? "
            f"AND detection = 0 AND type IN ({marks}) GROUP BY host ORDER BY host LIMIT ?",
            (min_rank, start, end, *kinds, limit),
        ).fetchall()
        return {str(host): (float(first), float(last)) for host, first, last in rows}

    @translated
    def detection_near(
        self, kind: str, when: float, within: float, match: Mapping[str, str]
    ) -> bool:
        unknown = set(match) - _MATCHABLE
        if unknown:
            raise ValueError(f"cannot match detections on {sorted(unknown)}")
        where = "".join(f" AND {key} = ?" for key in match)
        row = self._db.execute(
            f"SELECT 1 {_DETECTIONS} AND type = ?{where} "
            "AND event_time > ? AND event_time < ? LIMIT 1",
            (kind, *match.values(), when - within, when + within),
        ).fetchone()
        return row is not None


class SqliteEvents:
    """Reading, forwarding and pruning events on a connection of its own (interface.EventStore)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self._db = connect(path, readonly=readonly)
        self._lock = threading.Lock()  # one statement at a time on the shared connection

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @translated
    def query_events(
        self, host: str | None, since: float | None, min_rank: int, limit: int
    ) -> list[StoredEvent]:
        where = ["e.severity >= ?"]
        args: list[Any] = [min_rank]
        if host is not None:
            where.append("e.host = ?")
            args.append(host)
        if since is not None:
            where.append("e.event_time >= ?")
            args.append(since)
        sql = (
            f"{_SELECT_EVENTS} WHERE {' AND '.join(where)} "
            "ORDER BY e.event_time DESC, e.id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [_event(row) for row in reversed(rows)]

    @translated
    def events_after(self, last_id: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_EVENTS} WHERE e.id > ? ORDER BY e.id LIMIT ?", (last_id, limit)
            ).fetchall()
        return [_event(row) for row in rows]

    @translated
    def newest_event_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM security_events").fetchone()
        return int(row[0])

    def claim_destination(self, destination: str) -> bool:
        return True  # one collector owns an SQLite store

    @translated
    def load_cursor(self, destination: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT last_id FROM security_forward_cursors WHERE destination = ?", (destination,)
            ).fetchone()
        return int(row[0]) if row else 0

    @translated
    def save_cursor(self, destination: str, last_id: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO security_forward_cursors VALUES (?, ?) ON CONFLICT (destination) "
                "DO UPDATE SET last_id = excluded.last_id",
                (destination, last_id),
            )

    def forwarded_bound(self, destinations: Sequence[str]) -> int:
        bound = 2**62
        for name in destinations:
            bound = min(bound, self.load_cursor(name))
        return bound

    @translated
    def delete_events_before(self, cutoff: float, max_id: int, limit: int) -> int:
        with self._lock, write_transaction(self._db) as db:
            return int(
                db.execute(
                    "DELETE FROM security_events WHERE id IN (SELECT id FROM security_events "
                    "WHERE event_time < ? AND id <= ? LIMIT ?)",
                    (cutoff, max_id, limit),
                ).rowcount
            )

    @translated
    def event_counts(self, host: str | None) -> list[tuple[str, str, int, int, int]]:
        with self._lock:
            if host is None:
                return self._db.execute(_ALL_COUNTS).fetchall()
            return self._db.execute(_HOST_COUNTS, (host,)).fetchall()
