"""A per-agent token bucket: one agent sending too fast cannot starve the others.

Keyed by the authenticated host, so a client cannot dodge it by changing
its claim. The table is bounded: idle buckets (full again) are forgotten.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import grpc

from dcguard.collector.errors import Rejection

__all__ = ["RateLimiter"]

_MAX_BUCKETS = 100_000


class RateLimiter:
    """Allow `rate` requests per second per key on average, `burst` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def check(self, key: str) -> None:
        """Take one token for key, or raise a RESOURCE_EXHAUSTED rate_limited Rejection."""
        if self._rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise Rejection(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "rate_limited",
                    f"more than {self._rate:g} requests per second from {key}; slow down",
                    retry_after=(1.0 - tokens) / self._rate,
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_BUCKETS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        full_after = self._burst / self._rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:
                del self._buckets[key]
