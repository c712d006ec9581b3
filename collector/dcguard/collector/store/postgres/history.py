"""The filesystem free-space history (fs_history) in PostgreSQL: samples in, points out."""

from __future__ import annotations

from dcguard.collector.store.model import FsSample, PostgresDatabase
from dcguard.collector.store.postgres.connection import Connection, connect, translated

__all__ = ["HistoryWrites", "read_fs_history"]


class HistoryWrites:
    """The history part of the storing transaction (see interface.HistoryTransaction)."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    @translated
    def newest_samples(self, host: str) -> dict[str, float]:
        return dict(
            self._db.execute(
                "SELECT mountpoint, MAX(ts) FROM fs_history WHERE host = %s GROUP BY mountpoint",
                (host,),
            ).fetchall()
        )

    @translated
    def add_sample(
        self, host: str, mountpoint: str, at: float, avail_bytes: float, size_bytes: float
    ) -> None:
        # Two collectors never store one report twice, but a sample at the same
        # instant from a re-enrolled agent must not fail the batch.
        self._db.execute(
            "INSERT INTO fs_history VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (host, mountpoint, at, avail_bytes, size_bytes),
        )

    @translated
    def samples_since(self, host: str, mountpoint: str, since: float) -> list[tuple[float, float]]:
        return self._db.execute(
            "SELECT ts, avail_bytes FROM fs_history WHERE host = %s AND mountpoint = %s "
            "AND ts >= %s ORDER BY ts",
            (host, mountpoint, since),
        ).fetchall()

    @translated
    def drop_samples_before(self, host: str, cutoff: float) -> None:
        self._db.execute("DELETE FROM fs_history WHERE host = %s AND ts < %s", (host, cutoff))


@translated
def read_fs_history(database: PostgresDatabase) -> list[FsSample]:
    """Every sample, by host, mountpoint and time."""
    db = connect(database)
    try:
        rows: list[FsSample] = db.execute(
            "SELECT host, mountpoint, ts, avail_bytes FROM fs_history ORDER BY host, mountpoint, ts"
        ).fetchall()
    finally:
        db.close()
    return rows
