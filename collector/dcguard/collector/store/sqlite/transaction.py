"""The handle a ReportHook gets from the SQLite engine: the storing connection, typed."""

from __future__ import annotations

from dcguard.collector.store.sql.events import EventWrites
from dcguard.collector.store.sql.history import HistoryWrites
from dcguard.collector.store.sqlite.connection import SQLITE

__all__ = ["SqliteTransaction"]


class SqliteTransaction(EventWrites, HistoryWrites):
    """interface.Transaction over the connection the report store is committing on.

    Made per batch and used only inside its savepoint: whatever a hook
    writes through it commits or rolls back with the batch.
    """

    _dialect = SQLITE
