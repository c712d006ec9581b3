"""The SQLite engine's migrations: the shared schema (sql/schema.py) in SQLite's spelling."""

from __future__ import annotations

from dcguard.collector.store.sql import schema
from dcguard.collector.store.sql.schema import FAILURES_WHERE
from dcguard.collector.store.sqlite.connection import SQLITE, Migration

__all__ = [
    "AGENTS_CLOCK_SKEW",
    "AGENTS_SCHEMA",
    "ENROLLMENT_SCHEMA",
    "FAILURES_WHERE",
    "FS_HISTORY_SCHEMA",
    "MIGRATIONS",
    "SECURITY_SCHEMA",
]

MIGRATIONS: tuple[Migration, ...] = schema.migrations(SQLITE)
(
    AGENTS_SCHEMA,
    AGENTS_CLOCK_SKEW,
    ENROLLMENT_SCHEMA,
    FS_HISTORY_SCHEMA,
    SECURITY_SCHEMA,
) = MIGRATIONS
