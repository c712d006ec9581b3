"""The pending-event queue between what a security source has seen and what reports carry.

collect() hands out at most `per_report` events without removing them;
commit() (the report is durably stored) removes exactly those and returns the
checkpoint to persist. A collect() with no commit() since the last one means
that report was not stored: the same events are handed out again. Events over
the per-report cap wait for the next report (counted as deferred), never
dropped; the queue is bounded, and sources stop reading ahead when it is full.

Each item carries `start`, the checkpoint from which a restart re-creates it
(for a log: the offset of its line plus how many events of that line were
already taken). The queue's `tail` is the checkpoint after everything pushed.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Generic, TypeVar

from dcguard.agent.sources.security.events import SecurityCounters
from dcguard.v1 import collector_pb2 as pb

__all__ = ["EventQueue"]

C = TypeVar("C")


class _Item(Generic[C]):
    __slots__ = ("deferred", "event", "size", "start")

    def __init__(self, event: pb.SecurityEvent, start: C) -> None:
        self.event = event
        self.start = start
        self.size = event.ByteSize()
        self.deferred = False


class EventQueue(Generic[C]):
    """Bounded FIFO of events with hand-out/commit semantics; thread-safe."""

    def __init__(
        self,
        per_report: int,
        capacity: int,
        counters: SecurityCounters,
        tail: C,
        bytes_per_report: int = 512 * 1024,
    ) -> None:
        self._per_report = per_report
        self._bytes_per_report = bytes_per_report
        self._capacity = capacity
        self._counters = counters
        self._items: deque[_Item[C]] = deque()
        self._lock = threading.Lock()
        self._tail = tail
        self._handed = 0
        self._handed_checkpoint: Any = None
        self._awaiting_commit = False

    def room(self) -> int:
        """How many more events fit; readers stop reading ahead at 0."""
        with self._lock:
            return max(0, self._capacity - len(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def push(self, event: pb.SecurityEvent, start: C) -> None:
        """Queue one event; start is the checkpoint that re-creates it after a restart."""
        with self._lock:
            self._items.append(_Item(event, start))

    def push_scan(self, events: list[pb.SecurityEvent], start: C, tail: C) -> None:
        """Queue a whole scan's events and its resulting checkpoint in one step.

        A hand-out between the events and the new tail would commit the old
        baseline after sending the events: they would be sent again after a restart.
        """
        with self._lock:
            for event in events:
                self._items.append(_Item(event, start))
            self._tail = tail

    def set_tail(self, tail: C) -> None:
        """Everything pushed so far is accounted for up to this checkpoint."""
        with self._lock:
            self._tail = tail

    def hand_out(self, report: pb.Report) -> int:
        """Copy up to per_report events (and bytes) into the report; queued until commit().

        The byte budget keeps a report under the collector's message limit
        (4 MiB by default) whatever the events hold; one event always fits.
        """
        with self._lock:
            count, size = 0, 0
            limit = min(self._per_report, len(self._items))
            while count < limit:
                item = self._items[count]
                if count and size + item.size > self._bytes_per_report:
                    break
                size += item.size
                report.events.append(item.event)
                count += 1
            for index in range(count, len(self._items)):
                item = self._items[index]
                if not item.deferred:  # counted once per event, however long it waits
                    item.deferred = True
                    self._counters.add("events_deferred")
            self._handed = count
            self._handed_checkpoint = (
                self._items[count].start if count < len(self._items) else self._tail
            )
            self._awaiting_commit = True
            return count

    def withdraw(self) -> None:
        """Forget the last hand-out: the report it went into will not be stored."""
        with self._lock:
            self._awaiting_commit = False
            self._handed = 0
            self._handed_checkpoint = None

    def commit(self) -> tuple[bool, C | None]:
        """Drop the events last handed out; (True, checkpoint) if there was a hand-out."""
        with self._lock:
            if not self._awaiting_commit:
                return False, None
            for _ in range(self._handed):
                self._items.popleft()
            checkpoint: C = self._handed_checkpoint
            self._handed = 0
            self._handed_checkpoint = None
            self._awaiting_commit = False
            return True, checkpoint
