"""The enrollment registry on a PostgreSQL store, shared by every collector on the database.

Its SQL is sql/registry.py's; what PostgreSQL adds is making the
connection again when it broke (a restarted or failed-over server).
"""

from __future__ import annotations

from dcguard.collector.store.model import PostgresDatabase
from dcguard.collector.store.postgres.connection import POSTGRES, Connection, connect
from dcguard.collector.store.sql.registry import SqlRegistry

__all__ = ["PostgresRegistry"]


class PostgresRegistry(SqlRegistry):
    """interface.RegistryStore on a connection of its own (autocommit: each call commits)."""

    _dialect = POSTGRES

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        super().__init__()

    def _connect(self) -> Connection:
        return connect(self._database)
