"""Filesystem free-space history for the filling-fast trend, kept small in the store.

A ReportHook records at most one sample per filesystem per `sample_every`
(by the report's collected_at), deletes what is older than the window, and
refits the trend of the filesystems it sampled. The trends live in memory,
so rules and scrapes never query the database; a restarted collector or the
CLI rebuilds them from the stored samples with load().
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from dcguard.collector.risk.config import History
from dcguard.collector.store import Database, HistoryTransaction, fs_history
from dcguard.v1 import collector_pb2 as pb

__all__ = ["FilesystemHistory", "Trend", "fit_trend"]


@dataclass(frozen=True)
class Trend:
    """A least-squares line through one filesystem's recent available bytes."""

    at: float  # time of the newest sample
    avail_bytes: float  # the line's value at `at`
    slope_bytes_per_second: float
    span_seconds: float  # newest minus oldest sample used
    samples: int

    @property
    def seconds_to_full(self) -> float | None:
        """When the line reaches zero, counted from `at`; None if not falling."""
        if self.slope_bytes_per_second >= 0:
            return None
        return max(self.avail_bytes, 0.0) / -self.slope_bytes_per_second


def fit_trend(points: Sequence[tuple[float, float]]) -> Trend | None:
    """Fit (time, avail) points, oldest first; None for fewer than 3 or a zero span."""
    if len(points) < 3:
        return None
    t0 = points[0][0]
    xs = [t - t0 for t, _ in points]
    ys = [float(v) for _, v in points]
    n = len(points)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var <= 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var
    value_at_end = mean_y + slope * (xs[-1] - mean_x)
    return Trend(
        at=points[-1][0],
        avail_bytes=value_at_end,
        slope_bytes_per_second=slope,
        span_seconds=xs[-1],
        samples=n,
    )


class FilesystemHistory:
    """The ReportHook that records samples, and the in-memory trends they give."""

    def __init__(self, settings: History) -> None:
        self.settings = settings
        self._trends: dict[str, dict[str, Trend]] = {}
        self._lock = threading.Lock()
        # host -> mountpoint -> time of its newest sample, so deciding whether
        # a report adds a sample costs no query. Written only by on_stored
        # (under the store's write lock) and load(). A batch rolled back after
        # its sample was noted only delays that filesystem's next sample.
        self._newest: dict[str, dict[str, float]] = {}

    def trends(self, host: str) -> dict[str, Trend]:
        """mountpoint → trend for one host (those with enough history)."""
        with self._lock:
            return self._trends.get(host, {})

    def on_stored(self, tx: HistoryTransaction, host: str, report: pb.Report) -> None:
        at = report.collected_at.seconds + report.collected_at.nanos / 1e9
        window = self.settings.window_seconds
        fitted: dict[str, Trend | None] = {}
        newest = self._newest.get(host)
        if newest is None:
            newest = self._newest[host] = tx.newest_samples(host)
        for fs in report.filesystems:
            # Read-only filesystems (snaps, ISO images) cannot fill: no rows for them.
            if fs.error or fs.size_bytes == 0 or fs.readonly:
                continue
            last = newest.get(fs.mountpoint)
            # Downsample; a report older than the newest sample adds nothing new.
            if last is not None and at < last + self.settings.sample_every_seconds:
                continue
            newest[fs.mountpoint] = at
            tx.add_sample(host, fs.mountpoint, at, float(fs.avail_bytes), float(fs.size_bytes))
            points = tx.samples_since(host, fs.mountpoint, at - window)
            fitted[fs.mountpoint] = self._usable(fit_trend(points))
        if not fitted:
            return
        # Retention covers every mountpoint of the host, including unmounted ones.
        cutoff = at - self.settings.retention_seconds
        tx.drop_samples_before(host, cutoff)
        for mountpoint in [m for m, ts in newest.items() if ts < cutoff]:
            del newest[mountpoint]
        with self._lock:
            trends = dict(self._trends.get(host, {}))
            for mountpoint, trend in fitted.items():
                if trend is None:
                    trends.pop(mountpoint, None)
                else:
                    trends[mountpoint] = trend
            self._trends[host] = trends

    def _usable(self, trend: Trend | None) -> Trend | None:
        if trend is None or trend.span_seconds < self.settings.min_span_seconds:
            return None
        return trend

    def load(self, database: Database) -> None:
        """Rebuild every trend from the stored samples (at start, and in the CLI)."""
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        newest: dict[str, dict[str, float]] = {}
        for host, mountpoint, ts, avail in fs_history(database):
            series.setdefault((host, mountpoint), []).append((ts, avail))
            newest.setdefault(host, {})[mountpoint] = ts  # samples come oldest first
        trends: dict[str, dict[str, Trend]] = {}
        for (host, mountpoint), points in series.items():
            start = points[-1][0] - self.settings.window_seconds
            trend = self._usable(fit_trend([p for p in points if p[0] >= start]))
            if trend is not None:
                trends.setdefault(host, {})[mountpoint] = trend
        with self._lock:
            self._trends = trends
            self._newest = newest
