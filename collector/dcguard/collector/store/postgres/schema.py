"""The PostgreSQL engine's migrations: the shared schema (sql/schema.py) in PostgreSQL's spelling.

Names match the SQLite engine's, so `migrate --from-sqlite` and a reader
of both see one schema; agents has one column more (revision).
"""

from __future__ import annotations

from dcguard.collector.store.postgres.connection import POSTGRES, Migration
from dcguard.collector.store.sql import schema
from dcguard.collector.store.sql.schema import FAILURES_WHERE

__all__ = [
    "AGENTS_CLOCK_SKEW",
    "AGENTS_SCHEMA",
    "ENROLLMENT_SCHEMA",
    "FAILURES_WHERE",
    "FS_HISTORY_SCHEMA",
    "MIGRATIONS",
    "SECURITY_SCHEMA",
]

# Bumped by every batch stored for the host, under its row's lock:
# collectors refreshing their copy of the hosts (changed_agents) read
# only the rows that changed, and one copy of a host is newer than
# another by this number, never by comparing two collectors' clocks.
_REVISION = ",\n        revision BIGINT NOT NULL DEFAULT 0"

MIGRATIONS: tuple[Migration, ...] = schema.migrations(POSTGRES, _REVISION)
(
    AGENTS_SCHEMA,
    AGENTS_CLOCK_SKEW,
    ENROLLMENT_SCHEMA,
    FS_HISTORY_SCHEMA,
    SECURITY_SCHEMA,
) = MIGRATIONS
