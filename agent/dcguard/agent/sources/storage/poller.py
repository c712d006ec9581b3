"""A background thread that runs one slow check on its own schedule.

Sources whose tools are slow (smartctl, restic, borg) never run them inside
collect(): a Poller calls step() in its own thread, and collect() only
reads what the last step left behind.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    """Calls step() now and then again after the delay it returns, until closed.

    An exception escaping step() is logged once per distinct message and the
    thread keeps going after retry seconds: a long-running agent must not lose
    a source to one bad answer.
    """

    def __init__(self, name: str, step: Callable[[], float], retry: float = 60.0) -> None:
        self._name = name
        self._step = step
        self._retry = retry
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_error = ""
        self._rounds = threading.Condition()
        self.rounds = 0

    def start(self) -> None:
        """Start the thread once; later calls do nothing."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Run the next step now instead of at its scheduled time."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._step()
                self._last_error = ""
            except Exception as exc:  # noqa: BLE001 - the thread must survive any bad answer
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    log.warning("%s: check failed: %s", self._name, message)
                self._last_error = message
                delay = self._retry
            with self._rounds:
                self.rounds += 1
                self._rounds.notify_all()
            self._wake.wait(max(0.0, delay))
            self._wake.clear()

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """Wait until step() has finished `rounds` times in all (for tests and one-shot use).

        False at once if the thread was never started: there is nothing to wait for.
        """
        if self._thread is None:
            return False
        with self._rounds:
            return self._rounds.wait_for(lambda: self.rounds >= rounds, timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
