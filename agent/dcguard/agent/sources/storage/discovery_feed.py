"""One discovery of data locations per interval, shared by every source that needs it.

The coverage source reports which locations a backup covers; the ransomware
watcher watches the same locations. Discovery walks directories, so it must
run once per [coverage] interval, not once per user: the first source that
configures the feed fixes its settings, the first start() starts its one
background thread, and each listener is called (in that thread) with every
new Discovery. Nothing here runs in the report cycle.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from dcguard.agent.sources.storage.data_locations import (
    Discovery,
    DiscoveryContext,
    DiscoveryLimits,
    discover,
)
from dcguard.agent.sources.storage.poller import Poller

__all__ = ["DiscoveryFeed"]

Listener = Callable[[Discovery], None]


class DiscoveryFeed:
    """The latest Discovery and the thread that renews it every interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: tuple[float, DiscoveryContext, DiscoveryLimits] | None = None
        self._latest: Discovery | None = None
        self._at = 0.0
        self._listeners: list[Listener] = []
        self._poller = Poller("data-discovery", self._step)

    def configure(
        self, interval: float, context: DiscoveryContext, limits: DiscoveryLimits
    ) -> None:
        """Set what to discover and how often; the first call wins (one config, one walk)."""
        with self._lock:
            if self._settings is None:
                self._settings = (interval, context, limits)

    @property
    def configured(self) -> bool:
        with self._lock:
            return self._settings is not None

    def listen(self, listener: Listener) -> None:
        """Call listener with every new Discovery (at once if one is already known)."""
        with self._lock:
            self._listeners.append(listener)
            latest = self._latest
        if latest is not None:
            listener(latest)

    def latest(self) -> tuple[Discovery | None, float]:
        """The newest Discovery (None before the first finished) and when it finished."""
        with self._lock:
            return self._latest, self._at

    def start(self) -> bool:
        """Start the discovery thread once; False when nobody configured the feed."""
        if not self.configured:
            return False
        self._poller.start()
        return True

    def wake(self) -> None:
        """Discover again now instead of at the next interval."""
        self._poller.wake()

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        return self._poller.wait_rounds(rounds, timeout)

    def close(self) -> None:
        self._poller.close()

    def _step(self) -> float:
        with self._lock:
            settings = self._settings
        if settings is None:
            return 3600.0
        interval, context, limits = settings
        found = discover(context, limits)
        with self._lock:
            self._latest, self._at = found, time.time()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(found)
        return interval
