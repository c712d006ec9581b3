"""Writing rows read from another store into PostgreSQL (`migrate --from-sqlite`).

Each table's rows go in with their keys as they were (event ids too, so
forwarding cursors still point at the right events) and ON CONFLICT DO
NOTHING: running the copy again adds only what is missing, and a row the
collectors have moved on since (an agent's newer counters) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dcguard.collector.store.model import PostgresDatabase
from dcguard.collector.store.postgres.connection import connect, translated

__all__ = ["write_tables"]


@translated
def write_tables(
    database: PostgresDatabase,
    tables: Iterator[tuple[str, list[str], Iterator[list[tuple[Any, ...]]]]],
) -> dict[str, int]:
    """Insert every row not already there, in one transaction; table -> rows added."""
    added: dict[str, int] = {}
    db = connect(database)
    try:
        with db.transaction():
            for table, columns, chunks in tables:
                names = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join(["%s"] * len(columns))
                overriding = " OVERRIDING SYSTEM VALUE" if table == "security_events" else ""
                sql = (
                    f"INSERT INTO {table} ({names}){overriding} VALUES ({marks}) "
                    "ON CONFLICT DO NOTHING"
                )
                count = 0
                for rows in chunks:
                    with db.cursor() as cursor:
                        cursor.executemany(sql, rows)
                        count += max(cursor.rowcount, 0)
                added[table] = count
            # Events stored from now on get ids after the copied ones.
            db.execute(
                "SELECT setval(pg_get_serial_sequence('security_events', 'id'), "
                "GREATEST((SELECT MAX(id) FROM security_events), 1))"
            )
    finally:
        db.close()
    return added
