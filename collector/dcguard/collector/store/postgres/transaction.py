"""The handle a ReportHook gets from the PostgreSQL engine: the storing connection, typed."""

from __future__ import annotations

from dcguard.collector.events import StoredEvent
from dcguard.collector.store.postgres.connection import (
    EVENT_ORDER_LOCK,
    POSTGRES,
    Connection,
    translated,
)
from dcguard.collector.store.sql.events import EventWrites
from dcguard.collector.store.sql.history import HistoryWrites

__all__ = ["PostgresTransaction"]


class PostgresTransaction(EventWrites, HistoryWrites):
    """interface.Transaction over the connection the report store is committing on."""

    _dialect = POSTGRES
    # Two collectors never store one report twice, but a sample at the same
    # instant from a re-enrolled agent must not fail the batch.
    _on_duplicate_sample = " ON CONFLICT DO NOTHING"

    def __init__(self, db: Connection, *, event_order_locked: bool = False) -> None:
        """event_order_locked: the enclosing transaction already holds the event-order lock."""
        super().__init__(db)
        self._event_order_locked = event_order_locked

    @translated
    def insert_event(self, event: StoredEvent) -> StoredEvent:
        # Ids must be visible in their order, or a forwarder reading "after id N"
        # skips one committed late by another collector: hold the event-order lock
        # until this transaction commits. The report store takes it first, before any
        # row lock, when a batch has events: asking again would cost a round trip per
        # event for nothing. Once taken here it is held until this handle's savepoint
        # ends, and the handle ends with it.
        if not self._event_order_locked:
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_ORDER_LOCK,))
            self._event_order_locked = True
        return super().insert_event(event)
