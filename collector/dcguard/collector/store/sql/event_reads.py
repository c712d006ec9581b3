"""Security events outside ingestion, in SQL for both engines: reading, forwarding, pruning.

EventReads holds a connection of its own per thread or CLI; each engine
subclasses it with its Dialect and its way to connect (and PostgreSQL with
the forwarding claim that keeps one forwarder per destination across
collectors).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from dcguard.collector.events import StoredEvent
from dcguard.collector.store.sql.dialect import Connection, Dialect, scalar, translated
from dcguard.collector.store.sql.events import (
    ALL_COUNTS,
    HOST_COUNTS,
    SELECT_EVENTS,
    stored_event,
)

__all__ = ["EventReads"]


class EventReads:
    """Reading, forwarding and pruning events on a connection of its own (interface.EventStore)."""

    _dialect: ClassVar[Dialect]

    def __init__(self) -> None:
        self._db = self._connect()
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._closed = False  # closed on purpose: never connected again

    def _connect(self) -> Connection:
        """A new connection of this handle's own (the engine's)."""
        raise NotImplementedError

    def _reconnected(self) -> None:
        """What the engine forgets when its connection was made anew (nothing by default)."""

    def _conn(self) -> Connection:
        """The connection, made again if the last one broke (the database restarted)."""
        if not self._closed and self._dialect.broken(self._db):
            self._reconnected()
            self._db = self._connect()
        return self._db

    def _run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self._conn().execute(self._dialect.sql(statement), params)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def claim_destination(self, destination: str) -> bool:
        return True  # one collector owns the store unless the engine says otherwise

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
            f"{SELECT_EVENTS} WHERE {' AND '.join(where)} "
            "ORDER BY e.event_time DESC, e.id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._run(sql, (*args, limit)).fetchall()
        return [stored_event(row) for row in reversed(rows)]

    @translated
    def events_after(self, last_id: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            rows = self._run(
                f"{SELECT_EVENTS} WHERE e.id > ? ORDER BY e.id LIMIT ?", (last_id, limit)
            ).fetchall()
        return [stored_event(row) for row in rows]

    @translated
    def newest_event_id(self) -> int:
        with self._lock:
            value = scalar(self._run("SELECT COALESCE(MAX(id), 0) FROM security_events"))
        return int(value or 0)

    @translated
    def load_cursor(self, destination: str) -> int:
        with self._lock:
            row = self._run(
                "SELECT last_id FROM security_forward_cursors WHERE destination = ?", (destination,)
            ).fetchone()
        return int(row[0]) if row else 0

    @translated
    def save_cursor(self, destination: str, last_id: int) -> None:
        with self._lock:
            self._run(
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
        with self._lock:
            db = self._conn()
            with self._dialect.transaction(db):
                return int(
                    db.execute(
                        self._dialect.sql(
                            "DELETE FROM security_events WHERE id IN (SELECT id "
                            "FROM security_events WHERE event_time < ? AND id <= ? LIMIT ?)"
                        ),
                        (cutoff, max_id, limit),
                    ).rowcount
                )

    @translated
    def event_counts(self, host: str | None) -> list[tuple[str, str, int, int, int]]:
        with self._lock:
            if host is None:
                rows: list[tuple[str, str, int, int, int]] = self._run(ALL_COUNTS).fetchall()
            else:
                rows = self._run(HOST_COUNTS, (host,)).fetchall()
            return rows
