"""Reading the filesystem history out of a PostgreSQL store (its SQL is sql/history.py's)."""

from __future__ import annotations

from dcguard.collector.store.model import FsSample, PostgresDatabase
from dcguard.collector.store.postgres.connection import connect, translated
from dcguard.collector.store.sql.history import read_samples

__all__ = ["read_fs_history"]


@translated
def read_fs_history(database: PostgresDatabase) -> list[FsSample]:
    """Every sample, by host, mountpoint and time."""
    db = connect(database)
    try:
        return read_samples(db)
    finally:
        db.close()
