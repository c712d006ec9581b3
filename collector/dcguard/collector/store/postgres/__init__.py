"""The PostgreSQL engine of the store: one database shared by any number of collectors.

connection.py is the only module of the collector that imports psycopg
(an optional extra); schema.py holds every table; reports.py, registry.py,
events.py and history.py implement the store's interface for their
concern, with the same meaning as the SQLite engine's and safe when
several collectors write at once.
"""

from __future__ import annotations

from dcguard.collector.store.postgres.events import PostgresEvents
from dcguard.collector.store.postgres.history import read_fs_history
from dcguard.collector.store.postgres.registry import PostgresRegistry
from dcguard.collector.store.postgres.reports import PostgresStore

__all__ = ["PostgresEvents", "PostgresRegistry", "PostgresStore", "read_fs_history"]
