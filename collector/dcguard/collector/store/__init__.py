"""The store: the one owner of the collector's database.

Every read and write the collector makes goes through here: reports and
each agent's latest state, the enrollment registry, the filesystem
history, security events. The rest of the collector holds the typed
handles of interface.py and the values of model.py; it never writes SQL
and never imports a database driver. The engine is chosen here, in one
place, by the Database they are given (store/config.py reads it from
[store]): a Path is an SQLite file (store/sqlite/, the default), a
PostgresDatabase a PostgreSQL database shared by several collectors
(store/postgres/, imported only then: psycopg is an optional extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dcguard.collector.store.interface import (
    EventStore,
    EventTransaction,
    HistoryTransaction,
    RegistryStore,
    ReportHook,
    ReportStore,
    Transaction,
)
from dcguard.collector.store.model import (
    AgentRecord,
    ApplyResult,
    CertificateRecord,
    Database,
    DatabaseUnreachable,
    FsSample,
    PostgresDatabase,
    StoreError,
    StoreJob,
    TokenRecord,
)
from dcguard.collector.store.sqlite import (
    SqliteEvents,
    SqliteRegistry,
    SqliteStore,
    read_fs_history,
)

__all__ = [
    "AgentRecord",
    "ApplyResult",
    "CertificateRecord",
    "Database",
    "DatabaseUnreachable",
    "EventStore",
    "EventTransaction",
    "FsSample",
    "HistoryTransaction",
    "PostgresDatabase",
    "RegistryStore",
    "ReportHook",
    "ReportStore",
    "StoreError",
    "StoreJob",
    "TokenRecord",
    "Transaction",
    "backup",
    "copy_sqlite",
    "fs_history",
    "open_event_store",
    "registry_store",
    "report_store",
]


def report_store(
    database: Database, *, readonly: bool = False, hooks: Sequence[ReportHook] = ()
) -> ReportStore:
    """The report store (not yet open); writable, open() creates and migrates the database."""
    if isinstance(database, PostgresDatabase):
        from dcguard.collector.store.postgres import PostgresStore

        return PostgresStore(database, readonly=readonly, hooks=hooks)
    return SqliteStore(database, readonly=readonly, hooks=hooks)


def registry_store(database: Database) -> RegistryStore:
    """The enrollment registry's store (not yet open) on a database report_store created."""
    if isinstance(database, PostgresDatabase):
        from dcguard.collector.store.postgres import PostgresRegistry

        return PostgresRegistry(database)
    return SqliteRegistry(database)


def open_event_store(database: Database, *, readonly: bool = False) -> EventStore:
    """An open handle on the security events, of its own (one per thread or command)."""
    if isinstance(database, PostgresDatabase):
        from dcguard.collector.store.postgres import PostgresEvents

        return PostgresEvents(database)
    return SqliteEvents(database, readonly=readonly)


def fs_history(database: Database) -> list[FsSample]:
    """Every filesystem history sample, read-only (none before the database exists)."""
    if isinstance(database, PostgresDatabase):
        from dcguard.collector.store.postgres import read_fs_history as read_postgres

        return read_postgres(database)
    return read_fs_history(database)


def copy_sqlite(source: Path, target: PostgresDatabase) -> dict[str, int]:
    """Copy an SQLite store into PostgreSQL (made and migrated first); table -> rows added.

    Safe to run again: only rows not yet there are added, and rows the
    collectors have moved on since are kept as they are.
    """
    from dcguard.collector.store.postgres import PostgresStore
    from dcguard.collector.store.postgres.copy import write_tables
    from dcguard.collector.store.sqlite.copy import read_tables

    if not source.is_file():
        raise StoreError(f"no SQLite store at {source}")
    schema = PostgresStore(target)
    schema.open()
    schema.close()
    return write_tables(target, read_tables(source))


def backup(database: Database, target: Path) -> int:
    """A consistent online copy of an SQLite store in a new file; its size in bytes."""
    if isinstance(database, PostgresDatabase):
        raise StoreError(
            "a PostgreSQL store is backed up with PostgreSQL's tools "
            "(pg_dump, pg_basebackup), not by the collector"
        )
    from dcguard.collector.store.sqlite.copy import backup_to

    return backup_to(database, target)
