"""Reading a whole SQLite store out (for `migrate --from-sqlite`) and backing it up online.

Both use the engine's own connection settings (connection.py). The backup
is SQLite's online backup API: a consistent copy of the database as of one
moment, taken page by page beside a serving collector's writes (WAL lets
the writer go on; pages it changes meanwhile are copied again).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dcguard.collector.store.model import StoreError
from dcguard.collector.store.sqlite.connection import DatabaseError, connect, translated

__all__ = ["TABLES", "backup_to", "read_tables"]

# Every table of the store, parents first; what a copy moves.
TABLES = (
    "agents",
    "enrollment_tokens",
    "agent_certificates",
    "fs_history",
    "security_events",
    "security_event_counts",
    "security_forward_cursors",
)
_CHUNK = 1000
# Pages copied per step of the backup: small steps let the serving writer in between.
_BACKUP_PAGES = 1024


def read_tables(path: Path) -> Iterator[tuple[str, list[str], Iterator[list[tuple[Any, ...]]]]]:
    """(table, columns, chunks of rows) for each store table the file has, read-only."""
    db = connect(path, readonly=True)
    try:
        present = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        for table in TABLES:
            if table not in present:
                continue  # a database from before that feature
            cursor = db.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            yield table, columns, _chunks(cursor)
    finally:
        db.close()


def _chunks(cursor: Any) -> Iterator[list[tuple[Any, ...]]]:
    try:
        while rows := cursor.fetchmany(_CHUNK):
            yield rows
    except DatabaseError as exc:
        raise StoreError(f"cannot read the SQLite store: {exc}") from exc


@translated
def backup_to(path: Path, target: Path) -> int:
    """Copy the database at path to target (a new file) online; returns its size in bytes."""
    if target.exists():
        raise StoreError(f"{target} already exists; name a new file")
    partial = target.with_name(target.name + ".partial")
    source = connect(path, readonly=True)
    try:
        copy = connect(partial)
        try:
            source.backup(copy, pages=_BACKUP_PAGES)
            # The copy stands alone: one file, no -wal beside it to lose.
            copy.execute("PRAGMA journal_mode=DELETE")
            check = copy.execute("PRAGMA integrity_check").fetchone()
        finally:
            copy.close()
    finally:
        source.close()
    if check is None or check[0] != "ok":
        partial.unlink(missing_ok=True)
        raise StoreError(f"the copy failed its integrity check: {check}")
    partial.replace(target)
    return target.stat().st_size
