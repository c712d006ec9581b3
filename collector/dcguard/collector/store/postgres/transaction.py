"""The handle a ReportHook gets from the PostgreSQL engine: the storing connection, typed."""

from __future__ import annotations

from dcguard.collector.store.postgres.events import EventWrites
from dcguard.collector.store.postgres.history import HistoryWrites

__all__ = ["PostgresTransaction"]


class PostgresTransaction(EventWrites, HistoryWrites):
    """interface.Transaction over the connection the report store is committing on."""
