"""A background thread that runs a scan every interval, so collect() never waits for one."""

from __future__ import annotations

import logging
import threading
from typing import Callable

__all__ = ["PeriodicScanner"]

log = logging.getLogger(__name__)


class PeriodicScanner:
    """Calls scan(stop) now and then every interval until close(); errors are kept, not raised.

    scan receives the stop Event so long scans (rate-limited hashing) end
    promptly when the agent stops.
    """

    def __init__(self, name: str, interval: float, scan: Callable[[threading.Event], None]) -> None:
        self._name = name
        self._interval = interval
        self._scan = scan
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error = ""
        self.scans = 0

    @property
    def interval(self) -> float:
        return self._interval

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"{self._name}-scanner", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._scan(self._stop)
                self.error = ""
            except Exception as exc:  # noqa: BLE001 - a failed scan is reported, the next retried
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("%s scan failed: %s", self._name, self.error)
            self.scans += 1
            self._stop.wait(self._interval)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
