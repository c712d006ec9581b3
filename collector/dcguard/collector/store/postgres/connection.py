"""The one module of the collector that imports psycopg: connecting, migrations, errors.

psycopg is an optional extra (`pip install dcguard[postgresql]`): agents
and SQLite collectors never install it, so it is imported here and only
when a PostgreSQL store is used. Every connection is made here, so each
gets the same settings: a connect timeout (a dead database is one clear
error at start, not a hang), the password handed over apart from the DSN,
and the application name (pg_stat_activity shows which collector is which).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Sequence
from typing import Any, Callable, TypeVar, cast

import psycopg
from psycopg import conninfo

from dcguard.collector.store.model import DatabaseUnreachable, PostgresDatabase, StoreError
from dcguard.collector.store.sql.dialect import Dialect
from dcguard.collector.store.sql.schema import Migration

__all__ = [
    "EVENT_ORDER_LOCK",
    "FORWARD_LOCK",
    "MIGRATION_LOCK",
    "POSTGRES",
    "Connection",
    "DatabaseError",
    "Migration",
    "check_dsn",
    "connect",
    "is_transient",
    "migrate",
    "retryable",
    "translated",
]

# The advisory lock key serialising migrations across collectors starting at
# once: any constant works as long as every collector uses the same one.
MIGRATION_LOCK = 0x64636775617264  # "dcguard"
# Held by every transaction that stores security events, until it commits, so
# event ids become visible in their order (the forwarders read "after id N").
EVENT_ORDER_LOCK = 0x64636775617265
# The class (first key) of the per-destination forwarding locks (an int4).
FORWARD_LOCK = 0x64677264
CONNECT_TIMEOUT_S = 5

Connection = psycopg.Connection[tuple[Any, ...]]
DatabaseError = psycopg.Error

_F = TypeVar("_F", bound=Callable[..., Any])


def check_dsn(dsn: str) -> None:
    """ValueError unless dsn is a libpq connection string without a password in it."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a libpq connection string: {exc}") from None
    if "password" in params:
        raise ValueError(
            "holds a password: put it in store.password_file "
            "(or PGPASSWORD) instead, so it is never shown or logged"
        )


def translated(method: _F) -> _F:
    """Raise StoreError (with the server's message) where the method would raise psycopg.Error."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DatabaseError as exc:
            raise _error(exc) from exc

    return cast(_F, wrapper)


def _error(exc: BaseException) -> StoreError:
    return StoreError(_message(exc), transient=is_transient(exc))


def _message(exc: BaseException) -> str:
    # psycopg's messages can span lines (DETAIL, HINT): one line for the log.
    return " ".join(str(exc).split()) or type(exc).__name__


# SQLSTATE classes of the server or the connection, not of the data: connection
# exceptions, transaction rollbacks (serialization, deadlock), insufficient
# resources (disk full, out of memory, too many connections), operator
# intervention (shutdown, cannot connect now, cancel), system errors.
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
# Single states of the same kind in other classes: a read-only transaction (a
# standby during a failover), an idle session timed out, a lock not available,
# an object in use.
_TRANSIENT_STATES = ("25006", "25P03", "55P03", "55006")


def is_transient(exc: BaseException) -> bool:
    """True for failures of the database, the connection or the machine, not of the data.

    Such a batch is answered UNAVAILABLE and sent again; anything else (a
    DataError or IntegrityError: an out-of-range number, a violated
    constraint) would fail again, so the batch is refused for good.
    """
    if isinstance(exc, (StoreError,)):
        return exc.transient
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError, MemoryError)):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


def retryable(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure: the transaction may simply be run again."""
    state = getattr(exc, "sqlstate", None)
    return state in ("40001", "40P01")


def connect(database: PostgresDatabase, *, autocommit: bool = True) -> Connection:
    """A connection of its own; DatabaseUnreachable if the server refuses or cannot be reached."""
    params: dict[str, Any] = {"application_name": f"dcguard-collector@{socket.gethostname()}"}
    if "connect_timeout" not in conninfo.conninfo_to_dict(database.dsn):
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    if database.password is not None:
        params["password"] = database.password
    try:
        conn: Connection = psycopg.connect(database.dsn, autocommit=autocommit, **params)
    except psycopg.Error as exc:
        raise DatabaseUnreachable(f"cannot connect to {database}: {_message(exc)}") from None
    return conn


@translated
def migrate(db: Connection, migrations: Sequence[Migration]) -> None:
    """Apply each named migration not yet applied, once, even with collectors starting at once.

    A session advisory lock serialises collectors starting together: the
    second waits, then finds every name recorded. Each migration is its own
    transaction (PostgreSQL's DDL is transactional), so a failing step
    leaves nothing of itself behind and the ones before it stay applied,
    as with the SQLite engine.
    """
    db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
        for name, statements in migrations:
            if name in done:
                continue
            with db.transaction():
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
    finally:
        if not db.broken:
            db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


# How the shared SQL (store/sql/) is spelled for PostgreSQL.
POSTGRES = Dialect(
    name="postgresql",
    paramstyle="format",
    errors=DatabaseError,
    error=_error,
    transaction=lambda db: db.transaction(),
    broken=lambda db: bool(db.closed or db.broken),
    index_hints=False,
    returning=True,
    real="DOUBLE PRECISION",
    bigint="BIGINT",
    blob="BYTEA",
    serial_id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    without_rowid="",
)
