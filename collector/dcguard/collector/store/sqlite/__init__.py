"""The SQLite engine of the store: the collector's embedded default, one file in the data dir.

connection.py is the only module of the collector that imports sqlite3;
schema.py holds every table; reports.py, registry.py, events.py and
history.py implement the store's interface (store/interface.py) for their
concern.
"""

from __future__ import annotations

from dcguard.collector.store.sqlite.events import SqliteEvents
from dcguard.collector.store.sqlite.history import read_fs_history
from dcguard.collector.store.sqlite.registry import SqliteRegistry
from dcguard.collector.store.sqlite.reports import SqliteStore

__all__ = ["SqliteEvents", "SqliteRegistry", "SqliteStore", "read_fs_history"]
