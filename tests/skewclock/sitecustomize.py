"""Test-only: a wrong wall clock for one real process, stepped while it runs.

Put this directory on PYTHONPATH of a process under test and name a file in
DCGUARD_TEST_CLOCK_OFFSET_FILE holding seconds (e.g. "7200"): time.time and
time.time_ns of that process read that much ahead, re-read from the file at
most every 0.1 s, so a test steps the clock as NTP would. Monotonic clocks
are untouched, as NTP leaves them. (libfaketime offsets the monotonic clock
too, which hangs Python's timed waits, so it cannot stand in here.)
"""

from __future__ import annotations

import os
import time

_FILE = os.environ.get("DCGUARD_TEST_CLOCK_OFFSET_FILE", "")
_real_time, _real_time_ns, _monotonic = time.time, time.time_ns, time.monotonic
_cache = [0.0, -1.0]  # offset, when read (monotonic)


def _offset() -> float:
    now = _monotonic()
    if now - _cache[1] >= 0.1:
        try:
            with open(_FILE) as f:
                _cache[0] = float(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        _cache[1] = now
    return _cache[0]


if _FILE:
    time.time = lambda: _real_time() + _offset()
    time.time_ns = lambda: _real_time_ns() + int(_offset() * 1e9)
