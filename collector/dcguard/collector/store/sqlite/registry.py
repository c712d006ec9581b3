"""The enrollment registry on an SQLite store (its SQL is sql/registry.py's)."""

from __future__ import annotations

from pathlib import Path

from dcguard.collector.store.sql.registry import SqlRegistry
from dcguard.collector.store.sqlite.connection import SQLITE, Connection, connect

__all__ = ["SqliteRegistry"]


class SqliteRegistry(SqlRegistry):
    """interface.RegistryStore on a connection of its own (WAL lets the CLI and server share it)."""

    _dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self._path = path
        super().__init__()

    def _connect(self) -> Connection:
        return connect(self._path)
