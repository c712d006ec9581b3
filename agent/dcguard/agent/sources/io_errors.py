"""io_errors: storage I/O errors per device, counted from the kernel log.

[storage] kernel_log is "journal" (journalctl, resumed from a saved cursor:
one catch-up run, then `journalctl --follow`, never inside collect())
or a file such as /var/log/kern.log (tailed from a saved inode + offset;
after rotation the rest of the rotated file, "<path>.1", is read first; a
truncated file is read from the start). Counts are cumulative since the
agent's first run. Position and counts are saved in
state_dir/io-errors.json only in commit(), once the report that carried
them is durably stored: a crash re-reads lines rather than losing them.

The journal is read with the match _TRANSPORT=kernel rather than -k,
because -k implies "this boot only": the errors logged just before a crash
are the ones that matter after the reboot. The first run reads the newest
20,000 kernel entries of the journal (all boots it keeps), then resumes from
the cursor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from dcguard.agent.security.journal import JournalReader
from dcguard.agent.sources import Source, SourceContext, register
from dcguard.agent.state import atomic_write
from dcguard.agent.storage.config import StorageConfig, parse_storage
from dcguard.agent.storage.kernlog import ErrorCounter, ata_port_map
from dcguard.agent.storage.poller import Poller
from dcguard.agent.storage.tools import ToolError, last_line, run_tool
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["IoErrorsSource", "Position"]

log = logging.getLogger(__name__)
FIRST_RUN_JOURNAL_LINES = 20000
# -k would mean "this boot only"; see the module docstring.
KERNEL_MATCH = "_TRANSPORT=kernel"
FOLLOW_QUEUE = 10000          # entries read ahead of collect(); journalctl waits beyond that
FOLLOW_LINE_BYTES = 64 * 1024  # a longer JSON line is skipped, not held
FOREVER = 10.0**9


@dataclass(frozen=True)
class Position:
    """Where reading stopped: a file's inode and offset, or a journal cursor."""

    path: str = ""
    inode: int = 0
    offset: int = 0
    cursor: str = ""


class IoErrorsSource:
    name = "io_errors"

    def __init__(self, config: StorageConfig, state_file: Path, interval: float) -> None:
        self._config = config
        self._state_file = state_file
        self._loaded = False
        self._counter = ErrorCounter()
        self._position = Position()
        self._pending: tuple[ErrorCounter, Position] | None = None
        self._written = b""  # what commit() last wrote: an unchanged state is not rewritten
        self._journal: KernelJournal | None = None
        self._interval = interval

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            data = json.loads(self._state_file.read_text())
            self._counter = ErrorCounter.from_json(data["counter"])
            pos = data["position"]
            self._position = Position(str(pos["path"]), int(pos["inode"]), int(pos["offset"]),
                                      str(pos["cursor"]))
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            # Starting over re-counts history; refusing to run would count nothing.
            log.warning("io_errors: %s is unreadable (%s); counting from the start",
                        self._state_file, exc)
        self._counter.ata_ports.update(ata_port_map(self._config.sys_root))

    def start(self) -> bool:
        """Start reading the kernel journal in the background; False for a file (read inline)."""
        self._load()
        if self._config.kernel_log == "journal" and self._journal is None:
            self._journal = KernelJournal(self._config, self._counter, self._position,
                                          self._interval)
        return self._journal is not None

    def collect(self, report: pb.Report) -> None:
        self.start()
        # Continue from what the last collect read even if it is not committed yet:
        # counts are cumulative, so the next report still carries those errors.
        if self._journal is not None:
            counter, position = self._journal.latest()
        else:
            counter, position = self._pending or (self._counter, self._position)
            counter = counter.copy()
            position = self._read_file(counter, position)
        counter.flush()
        self._pending = (counter, position)
        for device, count in sorted(counter.counts.items()):
            entry = report.io_errors.add(device=device, errors_total=count.errors_total,
                                         last_message=count.last_message)
            if count.last_error_at:
                entry.last_error_at.FromNanoseconds(int(count.last_error_at * 1e9))

    def commit(self) -> None:
        if self._pending is None:
            return
        counter, position = self._pending
        data = {"counter": counter.to_json(), "position": position.__dict__}
        encoded = json.dumps(data).encode()
        # Most cycles read no new kernel error: the file already says this, and an
        # atomic write (two fsyncs) every cycle was a fifth of the agent's CPU.
        if encoded != self._written:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._state_file, encoded)
            self._written = encoded
        self._counter, self._position = counter, position

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """For tests and one-shot commands: wait until the journal was read n times."""
        return self._journal is not None and self._journal.poller.wait_rounds(rounds, timeout)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    # -- a log file ------------------------------------------------------------------

    def _feed_chunk(self, counter: ErrorCounter, handle: BinaryIO, offset: int,
                    budget: int) -> int:
        """Feed complete lines from offset, at most budget bytes; returns the new offset."""
        handle.seek(offset)
        data = handle.read(budget)
        end = data.rfind(b"\n")
        if end < 0:
            return offset
        now = time.time()
        for raw in data[:end].split(b"\n"):
            line = raw.decode("utf-8", errors="replace")
            counter.feed(line, now)
        return offset + end + 1

    def _read_file(self, counter: ErrorCounter, position: Position) -> Position:
        path = self._config.kernel_log
        budget = self._config.max_read_bytes
        with open(path, "rb") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            size = os.fstat(handle.fileno()).st_size
            offset = 0
            if position.path == path and position.inode == inode:
                offset = position.offset if position.offset <= size else 0
            elif position.path == path and position.inode:
                budget -= self._drain_rotated(counter, position, budget)
            offset = self._feed_chunk(counter, handle, offset, max(budget, 0))
        return Position(path=path, inode=inode, offset=offset)

    def _drain_rotated(self, counter: ErrorCounter, position: Position, budget: int) -> int:
        """Read the unread tail of the file we were reading before rotation; bytes used."""
        rotated = Path(f"{position.path}.1")
        try:
            with open(rotated, "rb") as handle:
                if os.fstat(handle.fileno()).st_ino != position.inode:
                    return 0
                end = self._feed_chunk(counter, handle, position.offset, budget)
                return end - position.offset
        except OSError:
            return 0


class KernelJournal:
    """Kernel journal entries for io_errors: one catch-up run, then `journalctl --follow`.

    Running journalctl every interval cost more CPU than all the rest of the
    agent (about 6 ms per run even on an empty journal: it opens and maps
    every journal file). A catch-up run in a background thread reads what
    was logged after the saved cursor (first run: the newest
    FIRST_RUN_JOURNAL_LINES kernel entries) and completes a round, so
    one-shot commands can wait for it; then a long-running `journalctl
    --follow` continues after the last cursor it read, costing nothing while
    the journal is quiet. If the follower exits, the next catch-up resumes
    from the last cursor taken and starts following again. journalctl can
    be slow on a large journal, so collect() never waits for it.
    """

    def __init__(self, config: StorageConfig, counter: ErrorCounter, position: Position,
                 interval: float) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._counter = counter.copy()
        self._position = position
        self._error = ""
        self._interval = interval
        self._follower: JournalReader | None = None
        self._closed = False
        self.poller = Poller("io_errors journal", self._catch_up, retry=interval)
        self.poller.start()

    def latest(self) -> tuple[ErrorCounter, Position]:
        """The counts and cursor reached so far; raises while the journal cannot be read."""
        with self._lock:
            self._take_followed()
            if self._error:
                raise RuntimeError(self._error)
            if not self.poller.rounds:
                # Not known yet is not success: a first report claiming the journal
                # was read is untrue when journalctl is missing.
                raise RuntimeError("the first read of the kernel journal has not finished yet")
            return self._counter.copy(), self._position

    def _take_followed(self) -> None:
        follower = self._follower
        if follower is None:
            return
        for entry in follower.get(follower.pending()):
            if not entry.oversized:
                self._counter.feed(entry.message,
                                   entry.when if entry.when is not None else time.time())
                self._position = replace(self._position, cursor=entry.cursor)
        if not follower.running() and follower.pending() == 0:
            # Everything it printed is taken: catch up from there, then follow again.
            self._error = f"kernel journal: {follower.error}; reading it again"
            log.warning("io_errors: %s", self._error)
            follower.close()
            self._follower = None
            self.poller.wake()

    def _catch_up(self) -> float:
        with self._lock:
            counter, position = self._counter.copy(), self._position
        try:
            position = read_journal(self._config, counter, position)
            error = ""
        except RuntimeError as exc:
            error = str(exc)
        with self._lock:
            if error and error != self._error:
                log.warning("io_errors: %s", error)
            self._error = error
            if error:
                return self._interval
            self._counter, self._position = counter, position
            if self._closed:  # close() gave up waiting for this run: start nothing now
                return FOREVER
            self._follower = JournalReader(
                [*_journalctl(self._config), "--follow", KERNEL_MATCH],
                capacity=FOLLOW_QUEUE, max_line_bytes=FOLLOW_LINE_BYTES,
                after_cursor=position.cursor, first_start=f"--lines={FIRST_RUN_JOURNAL_LINES}")
            self._follower.start()
        return FOREVER  # until woken because the follower exited

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.poller.close()
        with self._lock:
            if self._follower is not None:
                self._follower.close()
                self._follower = None


def _journalctl(config: StorageConfig) -> list[str]:
    argv = [config.journalctl, "-o", "json", "--no-pager", "-q"]
    if config.journal_directory:
        argv += ["--directory", config.journal_directory]
    return argv


def read_journal(config: StorageConfig, counter: ErrorCounter, position: Position) -> Position:
    """Feed kernel journal entries after position's cursor to counter; the new position."""
    argv = _journalctl(config)
    # First run: the newest kernel entries of every boot the journal keeps, bounded.
    argv += ([f"--after-cursor={position.cursor}"] if position.cursor
             else [f"--lines={FIRST_RUN_JOURNAL_LINES}"])
    argv.append(KERNEL_MATCH)
    try:
        result = run_tool(argv, config.journal_timeout)
    except ToolError as exc:
        raise RuntimeError(f"cannot read the kernel journal: {exc}; without journald, set "
                           "storage.kernel_log to a file such as /var/log/kern.log") from None
    if result.returncode != 0:
        raise RuntimeError(f"journalctl exited with {result.returncode}: "
                           f"{last_line(result.stderr) or 'no message'}")
    cursor = position.cursor
    for line in result.stdout.splitlines():
        entry = _journal_entry(line)
        if entry is None:
            continue
        message, when, entry_cursor = entry
        counter.feed(message, when)
        cursor = entry_cursor or cursor
    return replace(position, cursor=cursor, path="", inode=0, offset=0)


def _journal_entry(line: str) -> tuple[str, float, str] | None:
    """MESSAGE, time and cursor of one `journalctl -o json` line; None if unusable."""
    try:
        data: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message = data.get("MESSAGE")
    if isinstance(message, list):  # journald writes non-UTF-8 messages as byte arrays
        try:
            message = bytes(message).decode("utf-8", errors="replace")
        except (TypeError, ValueError):
            return None
    if not isinstance(message, str):
        return None
    try:
        when = int(data.get("__REALTIME_TIMESTAMP", "")) / 1e6
    except (TypeError, ValueError):
        when = time.time()
    cursor = data.get("__CURSOR")
    return message, when, cursor if isinstance(cursor, str) else ""


@register("io_errors", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    return IoErrorsSource(parse_storage(config), context.state_dir / "io-errors.json",
                          context.interval)
