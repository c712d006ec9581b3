"""Security events on a PostgreSQL store: a handle of its own (its SQL is sql/event_reads.py's).

What PostgreSQL adds: the connection is made again when it broke (a
restarted or failed-over server), and a forwarding destination is claimed
by one collector at a time with a session advisory lock, so each event is
sent once however many collectors share the database.
"""

from __future__ import annotations

from dcguard.collector.store.model import PostgresDatabase
from dcguard.collector.store.postgres.connection import (
    FORWARD_LOCK,
    POSTGRES,
    Connection,
    connect,
    translated,
)
from dcguard.collector.store.sql.dialect import scalar
from dcguard.collector.store.sql.event_reads import EventReads

__all__ = ["PostgresEvents"]


class PostgresEvents(EventReads):
    """interface.EventStore on a PostgreSQL database shared by collectors."""

    _dialect = POSTGRES

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        self._claimed: set[str] = set()  # destinations this session holds the lock of
        super().__init__()

    def _connect(self) -> Connection:
        return connect(self._database)

    def _reconnected(self) -> None:
        self._claimed.clear()  # session locks end with their session

    @translated
    def claim_destination(self, destination: str) -> bool:
        """A session advisory lock per destination: one forwarder across the collectors."""
        with self._lock:
            self._conn()  # a broken session's locks ended with it: forget them first
            if destination not in self._claimed:
                got = scalar(
                    self._run(
                        "SELECT pg_try_advisory_lock(?, hashtext(?))", (FORWARD_LOCK, destination)
                    )
                )
                if not got:
                    return False
                self._claimed.add(destination)
            return True
