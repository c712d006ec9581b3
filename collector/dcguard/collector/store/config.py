"""The [store] table of collector.toml: which engine keeps the collector's data, and where.

SQLite (the default) needs nothing: one file in the data dir. PostgreSQL
is for several collectors sharing one truth: `dsn` is a libpq connection
string (TLS to the database through its own keys: sslmode, sslrootcert,
sslcert, sslkey), and the password comes from `password_file` or from
libpq's own PGPASSWORD / PGPASSFILE, never from the DSN, so the config
file can be readable by those who run the CLI without giving the secret
away.
"""

from __future__ import annotations

from dcguard.collector.store.model import PostgresDatabase
from dcguard.common.config import Table

__all__ = ["ENGINES", "parse_store"]

ENGINES = ("sqlite", "postgresql")


def parse_store(table: Table) -> PostgresDatabase | None:
    """The PostgreSQL database [store] names; None for SQLite (the data dir's collector.db)."""
    engine = table.string("engine", "sqlite")
    if engine not in ENGINES:
        raise table.error("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "sqlite":
        for key in ("dsn", "password_file"):
            if table.has(key):
                raise table.error(key, 'is only for engine = "postgresql"')
        table.finish()
        return None
    dsn = table.string("dsn")
    password_file = table.path("password_file", "") if table.has("password_file") else None
    table.finish()
    # Only the engine imports the driver (an optional extra); it checks the DSN.
    try:
        from dcguard.collector.store.postgres.connection import check_dsn
    except ImportError:
        raise table.error(
            "engine", "PostgreSQL needs psycopg 3: pip install 'dcguard[postgresql]'"
        ) from None
    try:
        check_dsn(dsn)
    except ValueError as exc:
        raise table.error("dsn", str(exc)) from None
    password = None
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise table.error("password_file", f"cannot read {password_file}: {reason}") from None
        if not password:
            raise table.error("password_file", f"{password_file} is empty")
    return PostgresDatabase(dsn=dsn, password=password)
