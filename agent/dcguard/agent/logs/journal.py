"""Reading the systemd journal: `journalctl -o json` lines parsed in one place.

parse_entry() turns one JSON line into a JournalEntry, for the follower and
for one-shot runs alike. A message journald stored as bytes that are not
UTF-8 comes as an array of numbers: it is decoded with replacement
characters (numbers outside 0-255 dropped), never discarded. An entry
without __REALTIME_TIMESTAMP has when=None: each source decides which clock
stands in. A line without __CURSOR is skipped: a position could not resume
after it (journalctl always prints one).

JournalReader runs `journalctl -o json --follow` and parses its lines in a
reader thread into a bounded queue; when the queue is full the thread
blocks, journalctl blocks on its pipe, and nothing is read ahead beyond what
the source can hold. Each entry carries the cursor of the entry before it,
so a restart resumes with --after-cursor at exactly the first entry not yet
committed. Oversized JSON lines are skipped without being held.

Each journal source still runs its own follower (about 7 MiB each), because
the obvious sharing is wrong: one `journalctl --follow` with
`MATCHES + _TRANSPORT=kernel` has one --after-cursor, while auth_log and
io_errors each resume from their own cursor (saved when their own part of
a report is durable). Starting at the older of the two needs cursors
ordered, and cursors are opaque (sd_journal_get_cursor(3)): ordering them
by their realtime field loses auth events or counts a kernel error twice
(the counts are cumulative) when the clock is stepped back. And one reader
thread blocking on a full queue, as designed, would let auth_log's queue,
full during a long collector outage, stop io_errors counting the errors of
a dying disk.

What would work, and is not done yet: one follower started at the journal's
head, each source subscribing first and then catching up from its own
cursor with a one-shot run (short-lived, as io_errors' catch-up is today),
skipping the follower's entries whose cursor the catch-up already printed
(a prefix: no ordering needed); a source whose queue is full is dropped
from the follower and re-joins the same way once it has room. That moves
auth_log to a catch-up run as well and changes both sources' journal tests.
Where a host logs auth to a file (rsyslog), only io_errors follows the
journal anyway.
"""

from __future__ import annotations

import ctypes
import json
import logging
import queue
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import IO

__all__ = ["JournalEntry", "JournalReader", "journalctl_command", "parse_entry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JournalEntry:
    when: float | None
    program: str
    pid: str
    message: str
    cursor: str  # this entry's cursor
    previous: str  # the cursor before it: resuming there re-reads this entry
    oversized: bool = False
    comm: str = ""  # _COMM, set by journald itself: the sender cannot forge it


def journalctl_command(binary: str, directory: str = "") -> list[str]:
    """The start of every journalctl command line: JSON, no pager, no info lines."""
    command = [binary, "-o", "json", "--no-pager", "-q"]
    if directory:
        command += ["--directory", directory]
    return command


def parse_entry(line: bytes | str, previous: str) -> JournalEntry | None:
    """One `journalctl -o json` line; previous is the cursor before it; None if unusable."""
    try:
        data = json.loads(line)
        cursor = data["__CURSOR"]
    except (ValueError, KeyError, TypeError):  # TypeError: a JSON list or string
        return None
    if not isinstance(cursor, str) or not cursor:
        return None
    message = data.get("MESSAGE", "")
    if isinstance(message, list):  # journald sends non-UTF-8 messages as byte arrays
        raw = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256)
        message = raw.decode("utf-8", "replace")
    elif not isinstance(message, str):
        message = ""
    try:
        when: float | None = int(data["__REALTIME_TIMESTAMP"]) / 1e6
    except (KeyError, ValueError, TypeError):
        when = None
    return JournalEntry(
        when,
        str(data.get("SYSLOG_IDENTIFIER", "")),
        str(data.get("_PID", "")),
        message,
        cursor,
        previous,
        comm=str(data.get("_COMM", "")),
    )


class JournalReader:
    """Runs journalctl and parses its JSON lines in a daemon thread."""

    def __init__(
        self,
        command: list[str],
        capacity: int,
        max_line_bytes: int,
        after_cursor: str,
        first_start: str = "--lines=0",
    ) -> None:
        self._command = command
        self._first_start = first_start
        self._queue: queue.Queue[JournalEntry] = queue.Queue(maxsize=capacity)
        self._max_line = max_line_bytes
        self._cursor = after_cursor
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.error = ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="journal-reader", daemon=True)
        self._thread.start()

    def running(self) -> bool:
        """False once journalctl could not start or has exited (see error)."""
        return not self.error

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        command = list(self._command)
        if self._cursor:
            command.append(f"--after-cursor={self._cursor}")
        else:
            # Without a cursor: by default from now on, like the file's start_at.
            command.append(self._first_start)
        try:
            # Spawned from this thread: the parent-death signal follows the spawning thread,
            # and this one lives exactly as long as the reader.
            return subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
            )
        except OSError as exc:
            self.error = f"cannot run {command[0]}: {exc.strerror or exc}"
            return None

    def _run(self) -> None:
        self._process = self._spawn()
        if self._process is None or self._process.stdout is None:
            return
        stream = self._process.stdout
        while not self._stop.is_set():
            line, oversized = _read_line(stream, self._max_line)
            if line is None:
                break
            entry = self._parse(line, oversized)
            if entry is None:
                continue
            while not self._stop.is_set():
                try:
                    self._queue.put(entry, timeout=0.5)
                    break
                except queue.Full:
                    continue
        code = self._process.poll()
        if not self._stop.is_set():
            self.error = f"journalctl exited (status {code})"

    def _parse(self, line: bytes, oversized: bool) -> JournalEntry | None:
        previous = self._cursor
        if oversized:
            # The cursor is lost with the line; the next entry's "previous" stays at the
            # last good one, so a restart re-reads this oversized entry and skips it again.
            return JournalEntry(None, "", "", "", previous, previous, oversized=True)
        entry = parse_entry(line, previous)
        if entry is not None:
            self._cursor = entry.cursor
        return entry

    def pending(self) -> int:
        """Entries read from journalctl and not yet taken."""
        return self._queue.qsize()

    def get(self, limit: int) -> list[JournalEntry]:
        """Up to limit entries read so far, without waiting."""
        entries: list[JournalEntry] = []
        while len(entries) < limit:
            try:
                entries.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return entries

    def close(self) -> None:
        self._stop.set()
        self._terminate()  # unblocks the thread's read
        if self._thread is not None:
            self._thread.join(timeout=5)
        # A close right after start() can come before the thread spawned journalctl.
        self._terminate()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def _terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the agent dies, even by kill -9.

    `journalctl --follow` on a quiet journal never writes, so it would never
    get SIGPIPE and would outlive an agent that was killed.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _read_line(stream: IO[bytes], limit: int) -> tuple[bytes | None, bool]:
    """One line of at most limit bytes; longer lines are drained and flagged, never held."""
    line = stream.readline(limit + 1)
    if not line:
        return None, False
    if line.endswith(b"\n") or len(line) <= limit:
        return line, False
    while True:
        rest = stream.readline(65536)
        if not rest or rest.endswith(b"\n"):
            return b"", True
