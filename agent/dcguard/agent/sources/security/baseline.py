"""What the baseline-scanning sources (fim, ports) share.

Both scan in a background thread and compare against a baseline kept in
the state directory. The first collect() loads the baseline and starts the
scanner; collect() hands queued events to the report; commit() persists the
baseline that goes with the events handed out, once their report is
durably stored, so a crash re-reports a change instead of losing it.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Generic, TypeVar

from dcguard.agent.sources.security.events import SecurityCounters, SecuritySettings
from dcguard.agent.sources.security.queue import EventQueue
from dcguard.agent.sources.security.scanner import PeriodicScanner
from dcguard.agent.state_dir import atomic_write
from dcguard.v1 import collector_pb2 as pb

__all__ = ["BaselineScanSource"]

B = TypeVar("B")


class BaselineScanSource(ABC, Generic[B]):
    """A source whose events come from comparing background scans with a stored baseline."""

    name: str

    def __init__(
        self,
        *,
        interval: float,
        settings: SecuritySettings,
        state_file: Path,
        counters: SecurityCounters,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._state_file = state_file
        self._counters = counters
        self._clock = clock
        self._queue: EventQueue[B | None] = EventQueue(
            settings.max_events_per_report,
            settings.max_pending_events,
            counters,
            None,
            settings.max_event_bytes_per_report,
        )
        self._scanner = PeriodicScanner(self.name, interval, self._scan)
        self._working: B | None = None
        self._persisted: B | None = None
        self._started = False

    @property
    def scans(self) -> int:
        """Completed scans (tests wait on this instead of sleeping)."""
        return self._scanner.scans

    @property
    def interval(self) -> float:
        """Seconds between scans (benchmarks scale the cost per scan by it)."""
        return self._scanner.interval

    @abstractmethod
    def _load(self) -> B | None:
        """The persisted baseline, or None to take a new one silently."""

    @abstractmethod
    def _scan(self, stop: threading.Event) -> None:
        """One scan (in the scanner thread): queue events and the new working baseline."""

    def collect(self, report: pb.Report) -> None:
        # A hand-out not committed by now went into a report that was not stored; and if
        # this collect fails, the report stored next will not carry it either.
        self._queue.withdraw()
        if not self._started:
            self._started = True
            self._working = self._persisted = self._load()
            self._queue.set_tail(self._working)
            self._scanner.start()
        handed = self._queue.hand_out(report)
        self._counters.fill(report.security_stats)
        if self._scanner.error and handed == 0:
            self._queue.withdraw()  # a failed source's part is dropped: hand out nothing
            raise RuntimeError(self._scanner.error)

    def commit(self) -> None:
        handed, baseline = self._queue.commit()
        if not handed or baseline is None or baseline is self._persisted:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._state_file, json.dumps(baseline, sort_keys=True).encode())
        self._persisted = baseline

    def close(self) -> None:
        self._scanner.close()
