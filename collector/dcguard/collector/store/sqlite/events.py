"""Security events on an SQLite store: a handle of its own (its SQL is sql/event_reads.py's).

WAL lets it read and prune beside the collector's writer.
"""

from __future__ import annotations

from pathlib import Path

from dcguard.collector.store.sql.event_reads import EventReads
from dcguard.collector.store.sqlite.connection import SQLITE, Connection, connect

__all__ = ["SqliteEvents"]


class SqliteEvents(EventReads):
    """interface.EventStore on an SQLite file (one collector owns it: every destination is its)."""

    _dialect = SQLITE

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self._path = path
        self._readonly = readonly
        super().__init__()

    def _connect(self) -> Connection:
        return connect(self._path, readonly=self._readonly)
