"""The filesystem free-space history (fs_history) in SQL, both engines: samples in, points out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from dcguard.collector.store.model import FsSample
from dcguard.collector.store.sql.dialect import Connection, Dialect, translated

__all__ = ["HistoryWrites", "read_samples"]

# Every sample, by host, mountpoint and time (each engine's read_fs_history).
_ALL_SAMPLES = (
    "SELECT host, mountpoint, ts, avail_bytes FROM fs_history ORDER BY host, mountpoint, ts"
)


class HistoryWrites:
    """The history part of the storing transaction (see interface.HistoryTransaction)."""

    _dialect: ClassVar[Dialect]  # the engine's (its Transaction class names it)
    # What an INSERT does on a sample already there: nothing added fails the batch
    # (SQLite, one collector); " ON CONFLICT DO NOTHING" keeps it (PostgreSQL).
    _on_duplicate_sample: ClassVar[str] = ""

    def __init__(self, db: Connection) -> None:
        self._db = db

    def _run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(self._dialect.sql(statement), params)

    @translated
    def newest_samples(self, host: str) -> dict[str, float]:
        return dict(
            self._run(
                "SELECT mountpoint, MAX(ts) FROM fs_history WHERE host = ? GROUP BY mountpoint",
                (host,),
            ).fetchall()
        )

    @translated
    def add_sample(
        self, host: str, mountpoint: str, at: float, avail_bytes: float, size_bytes: float
    ) -> None:
        self._run(
            "INSERT INTO fs_history VALUES (?, ?, ?, ?, ?)" + self._on_duplicate_sample,
            (host, mountpoint, at, avail_bytes, size_bytes),
        )

    @translated
    def samples_since(self, host: str, mountpoint: str, since: float) -> list[tuple[float, float]]:
        rows: list[tuple[float, float]] = self._run(
            "SELECT ts, avail_bytes FROM fs_history WHERE host = ? AND mountpoint = ? "
            "AND ts >= ? ORDER BY ts",
            (host, mountpoint, since),
        ).fetchall()
        return rows

    @translated
    def drop_samples_before(self, host: str, cutoff: float) -> None:
        self._run("DELETE FROM fs_history WHERE host = ? AND ts < ?", (host, cutoff))


def read_samples(db: Connection) -> list[FsSample]:
    """Every sample on a connection (the engine opens it and translates its errors)."""
    rows: list[FsSample] = db.execute(_ALL_SAMPLES).fetchall()
    return rows
