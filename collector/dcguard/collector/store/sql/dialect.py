"""What an engine tells the shared SQL (store/sql/) about itself: one Dialect per engine.

The shared modules write SQL once, with `?` placeholders and identifiers
both engines accept ("user" quoted); a Dialect turns that into the
engine's own statement and its driver's errors into StoreError. Each
engine's connection module makes its Dialect, so no module here imports a
driver.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from dcguard.collector.store.model import StoreError

__all__ = ["Connection", "Dialect", "scalar", "translated"]

_F = TypeVar("_F", bound=Callable[..., Any])
_MARK = re.compile(r"\?")


class Connection(Protocol):
    """What the shared SQL needs of a driver's connection: run one statement."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    # The statements are constants: each is rewritten once, then looked up.
    return _MARK.sub("%s", sql.replace("%", "%%"))


@dataclass(frozen=True)
class Dialect:
    """One engine's spelling of the store's SQL, and its driver's errors."""

    name: str
    # "qmark" (sqlite3) or "format" (psycopg), as DB-API's paramstyle names them.
    paramstyle: str
    # The driver's base exception, and what a failure of it becomes in the store.
    errors: type[BaseException]
    error: Callable[[BaseException], StoreError]
    # BEGIN ... COMMIT on a connection in autocommit mode, rolled back if the block raises.
    transaction: Callable[[Any], AbstractContextManager[Any]]
    # True when a connection can no longer be used (a restarted server): make a new one.
    broken: Callable[[Any], bool]
    # SQLite needs INDEXED BY to use a partial index for some windows; PostgreSQL's
    # planner finds them itself (and has no such clause).
    index_hints: bool
    # A new row's id: from INSERT ... RETURNING id, or the cursor's lastrowid.
    returning: bool
    # Column types: a float, a 64-bit integer, bytes, the events' id column.
    real: str
    bigint: str
    blob: str
    serial_id: str
    # After CREATE TABLE (...) of a table with a primary key and nothing else.
    without_rowid: str

    def sql(self, statement: str) -> str:
        """The statement with this engine's placeholders."""
        return statement if self.paramstyle == "qmark" else _pyformat(statement)

    def indexed_by(self, index: str) -> str:
        """` INDEXED BY index` where the engine needs the hint, else nothing."""
        return f" INDEXED BY {index}" if self.index_hints else ""

    def inserted_id(self, db: Connection, statement: str, params: Any) -> int:
        """Run an INSERT into a table with an id column; the new row's id."""
        if self.returning:
            row = db.execute(self.sql(statement + " RETURNING id"), params).fetchone()
            return int(row[0]) if row else 0
        return int(db.execute(self.sql(statement), params).lastrowid or 0)


def scalar(cursor: Any) -> Any:
    """The first column of a query's one row (None without a row)."""
    row = cursor.fetchone()
    return None if row is None else row[0]


def translated(method: _F) -> _F:
    """Raise StoreError where a method of an object with a `_dialect` raises its driver's error."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        dialect: Dialect = self._dialect
        try:
            return method(self, *args, **kwargs)
        except dialect.errors as exc:
            raise dialect.error(exc) from exc

    return cast(_F, wrapper)
