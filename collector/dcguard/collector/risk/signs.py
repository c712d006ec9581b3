"""Each host's newest ransomware sign, for the ransomware_suspected reason.

A sign is an agent's critical `ransomware_suspected` (T1486) or
`mass_deletion` (T1485) event. It arrives once, in one report, while the
risk rules read a host's latest report: so a ReportHook notes each host's
newest sign as it is stored (the same transaction that stores the event),
and load() rebuilds them from the stored events at start, in the CLI, and,
with a store shared by several collectors, before each refresh of the hosts
another collector stored. The rules then keep the reason active for
ransomware_window after the sign's own time (docs/risk.md).
"""

from __future__ import annotations

import threading
import time

from dcguard.collector.events import (
    RANSOMWARE_SEVERITY,
    RANSOMWARE_SIGNS,
    StoredEvent,
    is_ransomware_sign,
    severity_rank,
)
from dcguard.collector.security.storage import from_proto
from dcguard.collector.store import Database, EventTransaction, open_event_store
from dcguard.v1 import collector_pb2 as pb

__all__ = ["LOAD_LIMIT", "RansomwareSigns"]

# load() reads at most this many of the newest critical events in the window:
# far more than a province's outbreak makes, and a bounded read at start.
LOAD_LIMIT = 20_000


class RansomwareSigns:
    """The ReportHook that notes signs, and each host's newest one."""

    def __init__(self) -> None:
        self._newest: dict[str, StoredEvent] = {}
        self._lock = threading.Lock()

    def newest(self, host: str) -> StoredEvent | None:
        with self._lock:
            return self._newest.get(host)

    def on_stored(self, tx: EventTransaction, host: str, report: pb.Report) -> None:
        # from_proto: the event's time exactly as stored (clamped when implausible).
        for event in report.events:
            if event.type in RANSOMWARE_SIGNS:
                self._note(from_proto(host, event, report, 0.0))

    def _note(self, event: StoredEvent) -> None:
        if is_ransomware_sign(event):
            with self._lock:
                _keep_newest(self._newest, event)

    def load(self, database: Database, window: float, now: float | None = None) -> None:
        """Rebuild from the signs stored within window of now (read-only)."""
        since = (time.time() if now is None else now) - window
        events = open_event_store(database, readonly=True)
        try:
            found = events.query_events(None, since, severity_rank(RANSOMWARE_SEVERITY), LOAD_LIMIT)
        finally:
            events.close()
        # Merged, never replaced: a sign the hook noted while this read ran stays.
        loaded: dict[str, StoredEvent] = {}
        for event in found:
            if is_ransomware_sign(event):
                _keep_newest(loaded, event)
        with self._lock:
            for event in loaded.values():
                _keep_newest(self._newest, event)


def _keep_newest(newest: dict[str, StoredEvent], event: StoredEvent) -> None:
    held = newest.get(event.host)
    if held is None or event.time >= held.time:
        newest[event.host] = event
