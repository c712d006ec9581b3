"""Reading the filesystem history out of an SQLite store (its SQL is sql/history.py's)."""

from __future__ import annotations

from pathlib import Path

from dcguard.collector.store.model import FsSample
from dcguard.collector.store.sql.history import read_samples
from dcguard.collector.store.sqlite.connection import OperationalError, connect, translated

__all__ = ["read_fs_history"]


@translated
def read_fs_history(path: Path) -> list[FsSample]:
    """Every sample, by host, mountpoint and time (read-only; none if there is no database)."""
    if not path.exists():
        return []
    db = connect(path, readonly=True)
    try:
        return read_samples(db)
    except OperationalError:
        return []  # a database from before this table existed
    finally:
        db.close()
