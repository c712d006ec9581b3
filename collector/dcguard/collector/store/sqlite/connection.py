"""The one module of the collector that imports sqlite3: opening, PRAGMAs, migrations, errors.

Every connection to the collector's database is made here, so every one
gets the same settings: WAL, so readers (the CLI, /metrics, forwarders)
work beside the writer; synchronous=FULL, so a commit survives a power cut
before the agent is acknowledged; a busy timeout, so a second connection
waits for the writer instead of failing at once. The other modules of the
engine write SQL on the Connection handed out here, and raise StoreError
(through `translated`) instead of sqlite3's own errors.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, TypeVar, cast

from dcguard.collector.store.model import StoreError
from dcguard.collector.store.sql.dialect import Dialect
from dcguard.collector.store.sql.schema import Migration

__all__ = [
    "SQLITE",
    "Connection",
    "DatabaseError",
    "Migration",
    "OperationalError",
    "connect",
    "is_transient",
    "migrate",
    "translated",
    "write_transaction",
]

Connection = sqlite3.Connection
DatabaseError = sqlite3.Error
OperationalError = sqlite3.OperationalError

BUSY_TIMEOUT_MS = 5000

_F = TypeVar("_F", bound=Callable[..., Any])


def is_transient(exc: BaseException) -> bool:
    """True for failures of the database or the machine, not of the data being stored.

    SQLite reports locked, busy, full, read-only and I/O errors as
    OperationalError (a corrupt file as a plain DatabaseError); an
    IntegrityError, an integer SQLite cannot hold, or a hook's ValueError
    come from the report and would come again.
    """
    return (
        isinstance(exc, (sqlite3.OperationalError, sqlite3.InternalError, OSError, MemoryError))
        or type(exc) is sqlite3.DatabaseError
    )


def _error(exc: BaseException) -> StoreError:
    return StoreError(str(exc), transient=is_transient(exc))


def translated(method: _F) -> _F:
    """Raise StoreError (with sqlite3's message) where the method would raise sqlite3.Error."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _error(exc) from exc

    return cast(_F, wrapper)


def connect(path: Path, *, readonly: bool = False) -> Connection:
    """A connection of its own to the collector database, in autocommit mode.

    Read-only: the file must exist (the CLIs never create it). Writable: the
    directory and file are created if missing.
    """
    try:
        if readonly:
            if not path.exists():
                raise StoreError(f"no collector database at {path}")
            db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise StoreError(str(exc)) from exc
    return db


@contextmanager
def write_transaction(db: Connection) -> Iterator[Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back if the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@translated
def migrate(db: Connection, migrations: Sequence[Migration]) -> None:
    """Apply each named migration not yet applied, each in its own transaction."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
    for name, statements in migrations:
        if name in done:
            continue
        with write_transaction(db):
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (?, julianday('now'))", (name,))


# How the shared SQL (store/sql/) is spelled for SQLite.
SQLITE = Dialect(
    name="sqlite",
    paramstyle="qmark",
    errors=sqlite3.Error,
    error=_error,
    transaction=write_transaction,
    broken=lambda db: False,  # a file: a connection to it does not break
    index_hints=True,
    returning=False,
    real="REAL",
    bigint="INTEGER",
    blob="BLOB",
    serial_id="INTEGER PRIMARY KEY AUTOINCREMENT",
    without_rowid=" WITHOUT ROWID",
)
