"""Security events in SQL, for both engines: inserting and counting, the detections' windows.

Writes inside the storing transaction go through EventWrites (a part of
the Transaction a ReportHook gets; each engine's Transaction names its
Dialect, and PostgreSQL's takes the event-order lock first); reads and
pruning outside it are event_reads.py's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from dcguard.collector.events import SEVERITIES, StoredEvent, severity_rank
from dcguard.collector.store.sql.dialect import Connection, Dialect, scalar, translated
from dcguard.collector.store.sql.schema import FAILURES_WHERE

__all__ = ["ALL_COUNTS", "HOST_COUNTS", "SELECT_EVENTS", "EventWrites", "stored_event"]

_INSERT = (
    "INSERT INTO security_events (host, event_time, received_at, type, severity, technique, "
    '"user", source_address, process, raw, source, path, port, protocol, tags, details, '
    "detection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT = (
    "INSERT INTO security_event_counts VALUES (?, ?, ?, ?, 1) "
    "ON CONFLICT (host, type, severity, detection) "
    "DO UPDATE SET count = security_event_counts.count + 1"
)
# Events are read joined to the agents table for the host's department.
SELECT_EVENTS = (
    "SELECT e.id, e.host, COALESCE(a.department, ''), e.event_time, e.received_at, e.type, "
    'e.severity, e.technique, e."user", e.source_address, e.process, e.raw, e.source, e.path, '
    "e.port, e.protocol, e.tags, e.details, e.detection "
    "FROM security_events e LEFT JOIN agents a ON a.host = e.host"
)
# Failed logins of one source on one host, through the partial index.
_FAILED = "FROM security_events{failures} WHERE " + FAILURES_WHERE
_FAILS = _FAILED + " AND source_address = ? AND host = ?"
_DETECTIONS = "FROM security_events{detections} WHERE detection = 1"
# The columns a detection may be matched on (detection_near's keys).
_MATCHABLE = frozenset({"host", "source_address", "user"})
ALL_COUNTS = (
    "SELECT host, type, severity, detection, count FROM security_event_counts "
    "ORDER BY host, type, severity"
)
HOST_COUNTS = (
    "SELECT host, type, severity, detection, count FROM security_event_counts "
    "WHERE host = ? ORDER BY type, severity"
)


def stored_event(row: tuple[Any, ...]) -> StoredEvent:
    """A StoredEvent from a row of SELECT_EVENTS."""
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


def _hinted(dialect: Dialect, statement: str) -> str:
    """The statement with its {failures}/{detections} index hints spelled for the engine."""
    if "{" not in statement:
        return statement
    return statement.replace("{failures}", dialect.indexed_by("security_failures")).replace(
        "{detections}", dialect.indexed_by("security_detections")
    )


class EventWrites:
    """The events part of the storing transaction (see interface.EventTransaction)."""

    _dialect: ClassVar[Dialect]  # the engine's (its Transaction class names it)

    def __init__(self, db: Connection) -> None:
        self._db = db

    def _run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Execute on the storing connection, index hints and placeholders the engine's."""
        return self._db.execute(self._dialect.sql(_hinted(self._dialect, statement)), params)

    @translated
    def insert_event(self, event: StoredEvent) -> StoredEvent:
        rank = severity_rank(event.severity)
        new_id = self._dialect.inserted_id(
            self._db,
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
        self._run(_COUNT, (event.host, event.type, rank, int(event.detection)))
        return replace(event, id=new_id)

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
            for r in self._run(
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
            for r in self._run(
                f"SELECT event_time {_FAILS} AND type = ? AND id != ? AND event_time > ? "
                "AND event_time <= ? ORDER BY event_time LIMIT ?",
                (source_address, host, type_, exclude_id, after, until, limit),
            )
        ]

    @translated
    def count_failures(
        self, source_address: str, host: str, type_: str, start: float, end: float
    ) -> int:
        count = scalar(
            self._run(
                f"SELECT COUNT(*) {_FAILS} AND type = ? AND event_time BETWEEN ? AND ?",
                (source_address, host, type_, start, end),
            )
        )
        return int(count or 0)

    @translated
    def latest_failure(
        self, source_address: str, host: str, start: float, end: float
    ) -> float | None:
        value = scalar(
            self._run(
                f"SELECT MAX(event_time) {_FAILS} AND event_time BETWEEN ? AND ?",
                (source_address, host, start, end),
            )
        )
        return None if value is None else float(value)

    @translated
    def earliest_failure(
        self, source_address: str, host: str, start: float, end: float
    ) -> float | None:
        value = scalar(
            self._run(
                f"SELECT MIN(event_time) {_FAILS} AND event_time BETWEEN ? AND ?",
                (source_address, host, start, end),
            )
        )
        return None if value is None else float(value)

    @translated
    def next_failed_host(self, source_address: str, after_host: str) -> str | None:
        # One seek through the partial index per host.
        row = self._run(
            f"SELECT host {_FAILED} AND source_address = ? AND host > ? ORDER BY host LIMIT 1",
            (source_address, after_host),
        ).fetchone()
        return None if row is None else str(row[0])

    @translated
    def latest_detection_from(
        self, source_address: str, kinds: Sequence[str], start: float, end: float
    ) -> tuple[str, str] | None:
        marks = ", ".join("?" * len(kinds))
        row = self._run(
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
        rows = self._run(
            'SELECT id, host, event_time, "user", process, type FROM security_events '
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
        rows = self._run(
            'SELECT event_time, details FROM security_events WHERE host = ? AND "user" = ? '
            "AND type IN ('group_member_added', 'user_modified') AND detection = 0 "
            "AND event_time BETWEEN ? AND ? ORDER BY event_time",
            (host, user, start, end),
        ).fetchall()
        return [(when, _json_details(details)) for when, details in rows]

    @translated
    def user_created_between(self, host: str, user: str, start: float, end: float) -> bool:
        row = self._run(
            'SELECT event_time FROM security_events WHERE host = ? AND "user" = ? '
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
        hint = self._dialect.indexed_by("security_events_severity_time")
        rows = self._run(
            f"SELECT host, MIN(event_time), MAX(event_time) FROM security_events{hint} "
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
        where = "".join(f' AND "{key}" = ?' for key in match)
        row = self._run(
            f"SELECT 1 {_DETECTIONS} AND type = ?{where} "
            "AND event_time > ? AND event_time < ? LIMIT 1",
            (kind, *match.values(), when - within, when + within),
        ).fetchone()
        return row is not None
