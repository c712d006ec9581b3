"""io_errors: storage I/O errors per device, counted from the kernel log.

[storage] kernel_log is "journal" (journalctl, resumed from a saved cursor:
one catch-up run, then `journalctl --follow`, never inside collect())
or a file such as /var/log/kern.log, followed by the agent's one log
tailer (logs/tailer.py: rotation by rename, with the rest of the rotated
file read first, copytruncate and truncation, like auth_log). Counts are
cumulative since the agent's first run. Position and counts are saved in
state_dir/io-errors.json only in commit(), once the report that carried
them is durably stored: a crash re-reads lines rather than losing them.
A position saved by an older agent ({path, inode, offset}) still resumes.

The journal is read with the match _TRANSPORT=kernel rather than -k,
because -k implies "this boot only": the errors logged just before a crash
are the ones that matter after the reboot. The first run reads the newest
20,000 kernel entries of the journal (all boots it keeps), then resumes from
the cursor.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dcguard.agent.logs.journal import JournalReader, journalctl_command, parse_entry
from dcguard.agent.logs.tailer import Checkpoint, FileTailer, rotated_globs
from dcguard.agent.sources import Source, SourceContext, register
from dcguard.agent.sources.storage.config import StorageConfig, parse_storage
from dcguard.agent.sources.storage.kernlog import ErrorCounter, ata_port_map
from dcguard.agent.sources.storage.poller import Poller
from dcguard.agent.sources.storage.tools import ToolError, error_line, run_tool
from dcguard.agent.state_dir import atomic_write
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["IoErrorsSource", "Position"]

log = logging.getLogger(__name__)
FIRST_RUN_JOURNAL_LINES = 20000
# -k would mean "this boot only"; see the module docstring.
KERNEL_MATCH = "_TRANSPORT=kernel"
FOLLOW_QUEUE = 10000  # entries read ahead of collect(); journalctl waits beyond that
FOLLOW_LINE_BYTES = 64 * 1024  # a longer JSON line is skipped, not held
FOREVER = 10.0**9
LINE_BYTES = 64 * 1024  # a longer kernel log line is cut to its first KEEP_BYTES
KEEP_BYTES = 4096  # (the device and the error are at its start)
LINES_PER_READ = 256  # lines asked of the tailer at a time, within max_read_bytes


@dataclass(frozen=True)
class Position:
    """Where reading stopped: in a log file (the tailer's checkpoint) or a journal cursor."""

    path: str = ""
    checkpoint: Checkpoint | None = None
    cursor: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "cursor": self.cursor,
            "checkpoint": self.checkpoint.to_json() if self.checkpoint else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> Position:
        """Read to_json(), or the {path, inode, offset, cursor} older agents saved."""
        path, cursor = str(data["path"]), str(data["cursor"])
        if "inode" not in data:
            if data["checkpoint"] is None:
                return cls(path, None, cursor)
            checkpoint = Checkpoint.from_json(data["checkpoint"])
            if checkpoint is None:  # counts without their position: both start over
                raise ValueError("the file position is malformed")
            return cls(path, checkpoint, cursor)
        inode, offset = int(data["inode"]), int(data["offset"])
        if not inode:
            return cls(path, None, cursor)
        # The old format had no device and no fingerprint: the device is the log
        # directory's (a rotated file stays beside the log), and an empty fingerprint
        # matches any file, which is what the old inode + offset check did.
        try:
            device = Path(path).parent.stat().st_dev
        except OSError:
            return cls(path, None, cursor)
        return cls(path, Checkpoint(device, inode, offset), cursor)


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
        self._tailer: FileTailer | None = None
        self._interval = interval

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            data = json.loads(self._state_file.read_text())
            # Both or neither: counts kept with their position lost would count twice.
            counter = ErrorCounter.from_json(data["counter"])
            self._position = Position.from_json(data["position"])
            self._counter = counter
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            # Starting over re-counts history; refusing to run would count nothing.
            log.warning(
                "io_errors: %s is unreadable (%s); counting from the start", self._state_file, exc
            )
        self._counter.ata_ports.update(ata_port_map(self._config.sys_root))

    def start(self) -> bool:
        """Start reading the kernel journal in the background; False for a file (read inline)."""
        self._load()
        if self._config.kernel_log == "journal" and self._journal is None:
            self._journal = KernelJournal(
                self._config, self._counter, self._position, self._interval
            )
        return self._journal is not None

    def collect(self, report: pb.Report) -> None:
        self.start()
        # Continue from what the last collect read even if it is not committed yet:
        # counts are cumulative, so the next report still carries those errors.
        if self._journal is not None:
            counter, position = self._journal.latest()
        else:
            counter = (self._pending[0] if self._pending else self._counter).copy()
            position = self._read_file(counter)
        counter.flush()
        self._pending = (counter, position)
        for device, count in sorted(counter.counts.items()):
            entry = report.io_errors.add(
                device=device, errors_total=count.errors_total, last_message=count.last_message
            )
            if count.last_error_at:
                entry.last_error_at.FromNanoseconds(int(count.last_error_at * 1e9))

    def commit(self) -> None:
        if self._pending is None:
            return
        counter, position = self._pending
        data = {"counter": counter.to_json(), "position": position.to_json()}
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
        if self._tailer is not None:
            self._tailer.shutdown()

    # -- a log file ------------------------------------------------------------------

    def _read_file(self, counter: ErrorCounter) -> Position:
        """Feed the lines written since the last read, at most about max_read_bytes."""
        path = Path(self._config.kernel_log)
        if self._tailer is None:
            self._tailer = FileTailer(path, rotated_globs(path), LINE_BYTES, KEEP_BYTES)
            saved = self._position
            self._tailer.restore(
                saved.checkpoint if saved.path == str(path) else None, start_at_end=False
            )  # the first run counts the history
        budget = self._config.max_read_bytes
        read = 0
        now = time.time()
        while budget > 0:
            # Even lines of LINE_BYTES each stay within the budget (plus one line).
            lines = self._tailer.read(max(1, min(LINES_PER_READ, budget // LINE_BYTES)))
            for line in lines:
                counter.feed(line.data.decode("utf-8", errors="replace"), now)
                budget -= len(line.data) + 1
            if not lines:
                break
            read += len(lines)
        if not read:  # what was read is reported; an error then shows next cycle
            if self._tailer.error:
                raise RuntimeError(self._tailer.error)
            if not path.exists():  # a kernel log named in the config: its absence is news
                raise FileNotFoundError(errno.ENOENT, "no kernel log at this path", str(path))
        return Position(path=str(path), checkpoint=self._tailer.position())


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

    def __init__(
        self, config: StorageConfig, counter: ErrorCounter, position: Position, interval: float
    ) -> None:
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
                self._counter.feed(
                    entry.message, entry.when if entry.when is not None else time.time()
                )
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
                capacity=FOLLOW_QUEUE,
                max_line_bytes=FOLLOW_LINE_BYTES,
                after_cursor=position.cursor,
                first_start=f"--lines={FIRST_RUN_JOURNAL_LINES}",
            )
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
    return journalctl_command(config.journalctl, config.journal_directory)


def read_journal(config: StorageConfig, counter: ErrorCounter, position: Position) -> Position:
    """Feed kernel journal entries after position's cursor to counter; the new position."""
    argv = _journalctl(config)
    # First run: the newest kernel entries of every boot the journal keeps, bounded.
    argv += (
        [f"--after-cursor={position.cursor}"]
        if position.cursor
        else [f"--lines={FIRST_RUN_JOURNAL_LINES}"]
    )
    argv.append(KERNEL_MATCH)
    try:
        result = run_tool(argv, config.journal_timeout)
    except ToolError as exc:
        raise RuntimeError(
            f"cannot read the kernel journal: {exc}; without journald, set "
            "storage.kernel_log to a file such as /var/log/kern.log"
        ) from None
    if result.returncode != 0:
        raise RuntimeError(
            f"journalctl exited with {result.returncode}: "
            f"{error_line(result.stderr) or 'no message'}"
        )
    cursor = position.cursor
    for line in result.stdout.splitlines():
        entry = parse_entry(line, cursor)
        if entry is None:
            continue
        counter.feed(entry.message, entry.when if entry.when is not None else time.time())
        cursor = entry.cursor
    return replace(position, cursor=cursor, path="", checkpoint=None)


@register("io_errors", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    return IoErrorsSource(
        parse_storage(config, context), context.state_dir / "io-errors.json", context.interval
    )
