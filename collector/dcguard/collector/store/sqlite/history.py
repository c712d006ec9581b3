"""The filesystem free-space history (fs_history) in SQLite: samples in, points out."""

from __future__ import annotations

from pathlib import Path

from dcguard.collector.store.model import FsSample
from dcguard.collector.store.sqlite.connection import (
    Connection,
    OperationalError,
    connect,
    translated,
)

__all__ = ["HistoryWrites", "read_fs_history"]


class HistoryWrites:
    """The history part of the storing transaction (see interface.HistoryTransaction)."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    @translated
    def newest_samples(self, host: str) -> dict[str, float]:
        return dict(
            self._db.execute(
                "SELECT mountpoint, MAX(ts) FROM fs_history WHERE host = ? GROUP BY mountpoint",
                (host,),
            ).fetchall()
        )

    @translated
    def add_sample(
        self, host: str, mountpoint: str, at: float, avail_bytes: float, size_bytes: float
    ) -> None:
        self._db.execute(
            "INSERT INTO fs_history VALUES (?, ?, ?, ?, ?)",
            (host, mountpoint, at, avail_bytes, size_bytes),
        )

    @translated
    def samples_since(self, host: str, mountpoint: str, since: float) -> list[tuple[float, float]]:
        return self._db.execute(
            "SELECT ts, avail_bytes FROM fs_history WHERE host = ? AND mountpoint = ? "
            "AND ts >= ? ORDER BY ts",
            (host, mountpoint, since),
        ).fetchall()

    @translated
    def drop_samples_before(self, host: str, cutoff: float) -> None:
        self._db.execute("DELETE FROM fs_history WHERE host = ? AND ts < ?", (host, cutoff))


@translated
def read_fs_history(path: Path) -> list[FsSample]:
    """Every sample, by host, mountpoint and time (read-only; none if there is no database)."""
    if not path.exists():
        return []
    db = connect(path, readonly=True)
    try:
        rows: list[FsSample] = db.execute(
            "SELECT host, mountpoint, ts, avail_bytes FROM fs_history ORDER BY host, mountpoint, ts"
        ).fetchall()
    except OperationalError:
        return []  # a database from before this table existed
    finally:
        db.close()
    return rows
