"""The store: the one owner of the collector's database.

Every read and write the collector makes goes through here: reports and
each agent's latest state, the enrollment registry, the filesystem
history, security events. The rest of the collector holds the typed
handles of interface.py and the values of model.py; it never writes SQL
and never imports a database driver. The engine is chosen here, in one
place: today SQLite (store/sqlite/); a second engine is a new subpackage
implementing the same interface, and these functions pick it.
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
    FsSample,
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
    "AgentRecord", "ApplyResult", "CertificateRecord", "EventStore", "EventTransaction",
    "FsSample", "HistoryTransaction", "RegistryStore", "ReportHook", "ReportStore",
    "StoreError", "StoreJob", "TokenRecord", "Transaction", "fs_history", "open_event_store",
    "registry_store", "report_store",
]


def report_store(database: Path, *, readonly: bool = False,
                 hooks: Sequence[ReportHook] = ()) -> ReportStore:
    """The report store (not yet open); writable, open() creates and migrates the database."""
    return SqliteStore(database, readonly=readonly, hooks=hooks)


def registry_store(database: Path) -> RegistryStore:
    """The enrollment registry's store (not yet open) on a database report_store created."""
    return SqliteRegistry(database)


def open_event_store(database: Path, *, readonly: bool = False) -> EventStore:
    """An open handle on the security events, of its own (one per thread or command)."""
    return SqliteEvents(database, readonly=readonly)


def fs_history(database: Path) -> list[FsSample]:
    """Every filesystem history sample, read-only (none before the database exists)."""
    return read_fs_history(database)
