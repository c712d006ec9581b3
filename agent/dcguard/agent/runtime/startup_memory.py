"""Hand the agent's start-up garbage back to the system, once (measured: about 0.4 MiB).

Importing the agent and building its first report leave freed memory in
glibc's heap that glibc keeps: free() returns only what lies at the top of
the heap. After the first cycle a full collection frees start-up's
garbage and malloc_trim() releases the free pages wherever they are.
Doing it periodically measured no better than noise, so it is not done.
Capping malloc arenas is done by the unit (MALLOC_ARENA_MAX=2): since the
gRPC channel is closed between reports, grpc's threads start anew for each
one, and with the cap the RSS grew less (docs/performance.md, "Memory").

malloc_trim is a glibc call made through ctypes; on another C library
(musl) it is skipped.
"""

from __future__ import annotations

import ctypes
import gc

__all__ = ["release_startup_memory"]


def release_startup_memory() -> None:
    """Collect garbage, then return the heap's free pages to the system."""
    gc.collect()
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded: the C library's among them
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
