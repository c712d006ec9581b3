"""The durable on-disk spool: every report is written here before any send.

Layout under <state_dir>/spool/:
  <first sequence, 20 digits>.seg   append-only segment files of framed records
                                    (delivery/records.py: length + CRC32, torn records skipped)
  meta.json                         the durable state: what is gone (acknowledged,
                                    dropped, refused), the cumulative counters and
                                    the last sequence; replaced atomically and fsynced
  position                          one 32-byte CRC-checked record, overwritten in
                                    place and never fsynced: last sequence, acknowledged
                                    sequence and removed-through as of the last append
                                    or acknowledgement

A report is appended and fsynced before it is sent and before sources commit
their read positions; it is forgotten only when the collector acknowledges
its sequence, a bound forces it out (oldest first, counted), or the
collector refused it for good (counted). Segments are deleted once every
record in them is gone.

Durability contract (one fsync per cycle: the record's):

* On open, every field is the highest of meta.json, the position record and
  the segments (each record's sequence; each segment's name, its first
  sequence, so the last sequence is at least the name minus one).
* kill -9 loses nothing and repeats nothing: written-but-unsynced data lives
  in the page cache and survives the process, so the position record holds
  every acknowledgement that returned.
* Power loss or an OS crash keeps what was fsynced. Every record was fsynced
  before it could be sent, so no unacknowledged report is lost. The position
  record may come back older, torn or empty: a torn or empty one fails its
  CRC and is ignored (one log line), an older one only means older values.
  Either way reports already acknowledged may be sent again, which the
  collector drops as counted duplicates (it keeps a max sequence per host),
  and the last sequence is still at least every sequence that was sent,
  since those are in fsynced records, or in meta.json once their segment
  is deleted.
* Whatever is the only durable record of a value is written to meta.json
  with fsync before it can matter: segments are deleted only once a
  meta.json covering them is durable; drops (dropped_total, removed_through)
  and refusals write meta.json at once; an acknowledgement above every
  spooled sequence (a state directory restored from an old backup) writes
  meta.json before the agent numbers a report above it.
* The spool is the sequence authority: the next sequence is one above the
  highest ever spooled, so restarts, kill -9, reboots and torn records never
  reuse or lower a number that may have left the agent. A record damaged on
  disk after it was written still counts through the position record and
  meta.json (barring that damage together with a power loss that also lost
  the position record).

A second process (``dcguard-agent status``) may open the spool read-only
while the runner writes: it takes no lock and changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from dcguard.agent.delivery.config import SpoolConfig
from dcguard.agent.delivery.records import decode, encode
from dcguard.agent.delivery.spool_meta import META_FIELDS, PositionRecord, read_meta, write_meta
from dcguard.agent.state_dir import fsync_directory
from dcguard.v1 import collector_pb2 as pb

__all__ = ["Spool", "SpoolConfig", "SpoolStats"]

log = logging.getLogger(__name__)

_SUFFIX = ".seg"


@dataclass(frozen=True)
class SpoolStats:
    """What `dcguard-agent status` shows about the spool."""

    reports: int
    bytes: int
    oldest_collected: float | None
    last_sequence: int
    acked_sequence: int
    dropped_total: int
    rejected_total: int
    skipped_bytes: int


class _Entry(NamedTuple):
    """Where one live record is; a tuple, since a full spool holds tens of thousands."""

    sequence: int
    collected_ns: int
    segment: Path
    offset: int
    size: int


def _append_whole(segment: Path, record: bytes) -> int:
    """Append record and fsync; return its offset. All of it, or none of it.

    On a full disk the kernel takes part of a record before refusing the
    rest: left there, those bytes would read back as a torn record (and
    `status` would report unreadable bytes) although nothing was damaged.
    So a failed append is cut off again before the error is raised.
    """
    fd = os.open(segment, os.O_WRONLY | os.O_APPEND)
    try:
        offset = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
            raise
        return offset
    finally:
        os.close(fd)


class Spool:
    """Append, peek oldest first, forget on acknowledgement; thread-safe within a process."""

    def __init__(
        self,
        directory: Path,
        config: SpoolConfig,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.config = config
        self._read_only = read_only
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: deque[_Entry] = deque()
        self._segments: dict[Path, int] = {}  # segment → highest sequence in it
        self._bytes = 0
        self._skipped_bytes = 0
        self._active: Path | None = None
        self._active_size = 0
        self._meta = dict.fromkeys(META_FIELDS, 0)
        self._dropping = 0  # reports dropped in the current episode (0: not dropping)
        self._in_flight_through = 0  # peeked and not yet acknowledged or released
        self._position = PositionRecord(directory)

    # -- opening -------------------------------------------------------------------------

    def open(self) -> None:
        """Read meta.json and every segment; a torn or corrupt record is logged and skipped."""
        if not self._read_only:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        read_meta(self.directory, self._meta)
        self._position.merge_into(self._meta, read_only=self._read_only)
        names = sorted(p for p in self._list() if p.name.endswith(_SUFFIX))
        for segment in names:
            first = segment.name[: -len(_SUFFIX)]
            if first.isdigit() and int(first) > 0:
                # Named before its first record was written: that sequence minus one was used.
                self._meta["last_sequence"] = max(self._meta["last_sequence"], int(first) - 1)
            try:
                data = segment.read_bytes()
            except FileNotFoundError:  # read-only view: the runner deleted it meanwhile
                continue
            self._segments[segment] = 0
            for item in decode(data):
                if isinstance(item, tuple):
                    offset, length = item
                    self._skipped_bytes += length
                    if not self._read_only:
                        log.warning(
                            "spool %s: skipped %d unreadable bytes at offset %d "
                            "(torn or corrupt record)",
                            segment.name,
                            length,
                            offset,
                        )
                    continue
                self._segments[segment] = max(self._segments[segment], item.sequence)
                self._meta["last_sequence"] = max(self._meta["last_sequence"], item.sequence)
                if item.sequence <= self._meta["removed_through"]:
                    continue
                if self._entries and item.sequence <= self._entries[-1].sequence:
                    log.warning(
                        "spool %s: sequence %d out of order; skipped", segment.name, item.sequence
                    )
                    continue
                self._entries.append(
                    _Entry(item.sequence, item.collected_ns, segment, item.offset, item.size)
                )
                self._bytes += item.size
        if not self._read_only:
            self._delete_consumed_segments()
            self._position.open(self._meta)
        # Appends always go to a fresh segment: never write after a torn tail.

    def _list(self) -> list[Path]:
        try:
            return list(self.directory.iterdir())
        except FileNotFoundError:
            return []

    # -- the report loop's side ------------------------------------------------------------

    @property
    def last_sequence(self) -> int:
        return self._meta["last_sequence"]

    @property
    def dropped_total(self) -> int:
        return self._meta["dropped_total"]

    def next_sequence(self) -> int:
        """The sequence the next appended report must carry."""
        return self._meta["last_sequence"] + 1

    def append(self, report: pb.Report) -> int:
        """Make room (oldest first), stamp sequence and drop count, write and fsync.

        The report's sequence is set here, under the lock, to one above the
        last: normally what next_sequence() said, but an acknowledgement that
        moved the sequence meanwhile must not make the report loop fail.
        """
        if self._read_only:
            raise RuntimeError("spool opened read-only")
        with self._lock:
            report.sequence = self._meta["last_sequence"] + 1
            now_ns = int(self._clock() * 1e9)
            collected_ns = report.collected_at.seconds * 10**9 + report.collected_at.nanos
            report.spool_dropped_total = self._meta["dropped_total"]
            payload = report.SerializeToString()
            dropped = self._enforce_bounds(now_ns, len(payload) + 64)
            if dropped:  # the count it carries changed: serialize again (only when dropping)
                report.spool_dropped_total = self._meta["dropped_total"]
                payload = report.SerializeToString()
            record = encode(report.sequence, collected_ns, payload)
            segment = self._segment_for(len(record))
            offset = _append_whole(segment, record)
            self._active_size = offset + len(record)
            self._segments[segment] = report.sequence
            self._entries.append(
                _Entry(report.sequence, collected_ns, segment, offset, len(record))
            )
            self._bytes += len(record)
            self._meta["last_sequence"] = report.sequence
            if dropped:
                # The only record of the drops: durable before the segments go.
                write_meta(self.directory, self._meta)
                self._delete_consumed_segments(meta_written=True)
            else:
                # The fsynced record carries the sequence; this copy only keeps it
                # should that record be damaged on disk later (module docstring).
                self._position.write(self._meta)
            self._log_episode(dropped, now_ns)
            return report.sequence

    def _segment_for(self, size: int) -> Path:
        """The segment to append to, starting a new one when needed (and fsyncing the dir)."""
        if self._active is None or self._active_size + size > self.config.segment_bytes:
            self._active = self.directory / f"{self._meta['last_sequence'] + 1:020d}{_SUFFIX}"
            self._active.touch()
            self._active_size = self._active.stat().st_size
            fsync_directory(self.directory)
        return self._active

    def _enforce_bounds(self, now_ns: int, incoming: int) -> int:
        """Drop the oldest records past max_age, then until incoming fits in max_bytes."""
        cutoff = now_ns - int(self.config.max_age * 1e9)
        dropped = 0
        while self._entries and (
            self._entries[0].collected_ns < cutoff or self._bytes + incoming > self.config.max_bytes
        ):
            if self._entries[0].sequence <= self._in_flight_through:
                # Being sent right now: it may be stored, so it is not "dropped".
                # The bound is exceeded by at most this one batch until it resolves.
                break
            entry = self._entries.popleft()
            self._bytes -= entry.size
            self._meta["removed_through"] = entry.sequence
            dropped += 1
        self._meta["dropped_total"] += dropped
        return dropped

    def _log_episode(self, dropped: int, now_ns: int) -> None:
        """One warning when dropping starts and one line when it stops, never per report.

        At the bound nearly every append drops one report, but not quite every
        one (report sizes and timing vary), so the episode only ends once the
        spool is back under half of its bounds or delivery removes reports.
        """
        if dropped and not self._dropping:
            log.warning(
                "spool bound reached (max_bytes %d, max_age %gs): dropping the oldest "
                "reports; %d dropped so far in total",
                self.config.max_bytes,
                self.config.max_age,
                self._meta["dropped_total"],
            )
        if dropped:
            self._dropping += dropped
        elif self._dropping and self._has_margin(now_ns):
            self._end_episode()

    def _has_margin(self, now_ns: int) -> bool:
        oldest_age = (now_ns - self._entries[0].collected_ns) / 1e9 if self._entries else 0.0
        return self._bytes < self.config.max_bytes / 2 and oldest_age < self.config.max_age / 2

    def _end_episode(self) -> None:
        log.warning("spool no longer dropping: %d reports dropped in that episode", self._dropping)
        self._dropping = 0

    # -- the delivery side -------------------------------------------------------------------

    def peek(self, max_reports: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest spooled reports (sequence, serialized Report), at least one if any.

        They count as in flight, exempt from the bounds, until release().
        """
        with self._lock:
            chosen: list[_Entry] = []
            total = 0
            for entry in self._entries:
                if chosen and (len(chosen) >= max_reports or total + entry.size > max_bytes):
                    break
                chosen.append(entry)
                total += entry.size
            if chosen:
                self._in_flight_through = chosen[-1].sequence
            return self._read(chosen)

    def release(self) -> None:
        """The peeked batch is resolved (acknowledged, refused or failed)."""
        with self._lock:
            self._in_flight_through = 0

    def _read(self, entries: list[_Entry]) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        handles: dict[Path, BinaryIO] = {}
        with ExitStack() as stack:
            for entry in entries:
                handle = handles.get(entry.segment)
                if handle is None:
                    handle = handles[entry.segment] = stack.enter_context(open(entry.segment, "rb"))
                handle.seek(entry.offset)
                data = handle.read(entry.size)
                for item in decode(data):
                    if not isinstance(item, tuple) and item.sequence == entry.sequence:
                        out.append((entry.sequence, item.payload))
                        break
                else:  # changed on disk since it was written: the caller drops it
                    out.append((entry.sequence, b""))
        return out

    @property
    def acked_sequence(self) -> int:
        """The highest sequence a collector acknowledged (0: none yet); told to the next."""
        with self._lock:
            return self._meta["acked_sequence"]

    def ack(self, sequence: int) -> int:
        """The collector stored everything up to sequence: forget it. Returns how many."""
        with self._lock:
            removed = self._remove_through(sequence)
            if removed and self._dropping:
                self._end_episode()
            if sequence <= self._meta["acked_sequence"]:
                return removed
            self._meta["acked_sequence"] = sequence
            if sequence > self._meta["last_sequence"]:
                # The collector holds a sequence we never spooled (a state dir restored
                # from backup): continue above it, so new reports are not duplicates.
                # No record shows that sequence, so meta.json must, durably.
                self._meta["last_sequence"] = sequence
                write_meta(self.directory, self._meta)
                self._delete_consumed_segments(meta_written=True)
                return removed
            # Losing this to a power cut only re-sends acknowledged reports, which the
            # collector counts as duplicates: no fsync (module docstring).
            self._position.write(self._meta)
            self._delete_consumed_segments()
            return removed

    def reject(self, sequence: int) -> None:
        """The collector refused this (oldest) report for good: forget it and count it."""
        with self._lock:
            if self._remove_through(sequence):
                self._meta["rejected_total"] += 1
            write_meta(self.directory, self._meta)
            self._delete_consumed_segments()

    def _remove_through(self, sequence: int) -> int:
        removed = 0
        while self._entries and self._entries[0].sequence <= sequence:
            self._bytes -= self._entries.popleft().size
            removed += 1
        self._meta["removed_through"] = max(self._meta["removed_through"], sequence)
        return removed

    def _delete_consumed_segments(self, meta_written: bool = False) -> None:
        """Delete segments whose every record is gone, once meta.json says so."""
        gone = [
            segment
            for segment, highest in self._segments.items()
            if highest <= self._meta["removed_through"] and segment != self._active
        ]
        if not gone:
            return
        # meta.json must cover every deleted sequence before the files go, or a
        # restart could hand out a sequence the collector already has.
        if not meta_written:
            write_meta(self.directory, self._meta)
        for segment in gone:
            segment.unlink(missing_ok=True)
            del self._segments[segment]
        fsync_directory(self.directory)

    def stats(self) -> SpoolStats:
        with self._lock:
            oldest = self._entries[0].collected_ns / 1e9 if self._entries else None
            return SpoolStats(
                reports=len(self._entries),
                bytes=self._bytes,
                oldest_collected=oldest,
                last_sequence=self._meta["last_sequence"],
                acked_sequence=self._meta["acked_sequence"],
                dropped_total=self._meta["dropped_total"],
                rejected_total=self._meta["rejected_total"],
                skipped_bytes=self._skipped_bytes,
            )

    def __len__(self) -> int:
        return len(self._entries)
