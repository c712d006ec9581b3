"""Following a log file across rotation with no duplicates and no gaps.

The position is (device, inode, offset) plus a fingerprint of the file's
first bytes, so a restart resumes exactly where the last committed report
ended. Rotation by rename: the old file stays open and is read to its end
(including a last line without newline) before switching, which happens once
the new file has data, i.e. once the writer has reopened. Rotation by
copytruncate: the file shrinks or its first bytes change; the rest of the
old content is read from the rotated copy (found by fingerprint) before
restarting at offset 0. After a restart, a saved inode that is no longer at
the path is looked for among the rotated files.

Lines longer than max_line_bytes are never held whole: only the first
keep_bytes are kept and the rest is skipped as it is read.

The caller keeps the position of what it has handed on (position(), or a
line's start) and saves it only once the report carrying those lines is
durable; restore() resumes there after a restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_ROTATED", "Checkpoint", "FileTailer", "Line", "rotated_globs"]

log = logging.getLogger(__name__)

HEAD_BYTES = 256
CHUNK = 65536
# Where logrotate puts the old file: "auth.log.1" (and .2.gz: never matched, never
# read), or with dateext "auth.log-20261206"; {path} is the log's own path.
DEFAULT_ROTATED = ("{path}.[0-9]", "{path}-[0-9]*")


def rotated_globs(path: Path, patterns: tuple[str, ...] = DEFAULT_ROTATED) -> tuple[str, ...]:
    """The glob patterns of a log's rotated files, {path} replaced by the log's path."""
    return tuple(pattern.replace("{path}", str(path)) for pattern in patterns)


@dataclass(frozen=True)
class Checkpoint:
    """Where a line starts (or reading resumes); skip = events of that line already taken."""

    dev: int
    ino: int
    offset: int
    head: str = ""
    head_len: int = 0
    skip: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint | None:
        try:
            return cls(
                **{key: int(data[key]) for key in ("dev", "ino", "offset", "head_len", "skip")},
                head=str(data["head"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Line:
    data: bytes  # the line without its newline, at most keep_bytes if oversized
    start: Checkpoint  # the position of its first byte
    oversized: bool


def _head_digest(fd: int, length: int) -> str:
    return hashlib.sha256(os.pread(fd, length, 0)).hexdigest() if length else ""


class FileTailer:
    """Reads complete lines from a log file, following renames and truncation."""

    def __init__(
        self, path: Path, rotated_globs: tuple[str, ...], max_line_bytes: int, keep_bytes: int
    ) -> None:
        self.path = path
        self._globs = rotated_globs
        self._max_line = max_line_bytes
        self._keep = keep_bytes
        self._fd: int | None = None
        self._dev = 0
        self._ino = 0
        self._offset = 0  # start of the next line not yet returned
        self._buf = b""  # bytes from _offset - _consumed (kept prefix when discarding)
        self._read_pos = 0  # next byte to read from the file
        self._discarding = False  # inside an oversized line
        self._skipped = 0  # bytes of the oversized line not kept
        self._consumed = 0  # bytes at the start of _buf already returned as lines
        self._head = ""
        self._head_len = 0
        self._switch_at_eof = False  # the open file is an old one: move on at its end
        self._then_fd: int | None = None  # after a copy: the truncated file, read from 0
        self._head_bytes = b""  # the first HEAD_BYTES bytes read, when read from offset 0
        self._head_from_zero = True
        self._resume: Checkpoint | None = None
        self._start_at_end = False
        self.restored_skip = 0
        self.error = ""

    # --- positions -------------------------------------------------------------------
    def restore(self, checkpoint: Checkpoint | None, *, start_at_end: bool) -> None:
        """Set where to resume; the file itself is opened on the first read()."""
        self._resume = checkpoint
        self._start_at_end = start_at_end
        self.restored_skip = checkpoint.skip if checkpoint else 0

    def position(self) -> Checkpoint | None:
        """The checkpoint after the last line returned; None while no file was ever open."""
        if self._fd is None:
            return replace(self._resume, skip=0) if self._resume is not None else None
        self._update_head()
        return Checkpoint(self._dev, self._ino, self._offset, self._head, self._head_len)

    def _update_head(self) -> None:
        """Fingerprint the first bytes returned so far.

        From the bytes actually read, never re-read from the file: by the time
        we look, the file may already have been truncated and refilled, and a
        fingerprint of the new content would hide that truncation.
        """
        wanted = min(HEAD_BYTES, self._offset)
        if self._fd is None or self._head_len >= wanted:
            return
        if self._head_from_zero:
            wanted = min(wanted, len(self._head_bytes))
            self._head = hashlib.sha256(self._head_bytes[:wanted]).hexdigest()
        else:  # resumed mid-file from a short fingerprint: only the file can extend it
            self._head = _head_digest(self._fd, wanted)
        self._head_len = wanted

    # --- opening ---------------------------------------------------------------------
    def _use(self, fd: int, offset: int, head: str = "", head_len: int = 0) -> None:
        self.close()
        st = os.fstat(fd)
        self._fd, self._dev, self._ino = fd, st.st_dev, st.st_ino
        self._offset = self._read_pos = offset
        self._buf, self._discarding, self._skipped, self._consumed = b"", False, 0, 0
        self._head, self._head_len = head, head_len
        self._head_bytes = b""
        self._head_from_zero = offset == 0
        self._switch_at_eof = False

    def _open_path(self, offset_at_end: bool = False) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY)
        except FileNotFoundError:
            self.error = ""  # no log (yet) is no data, not a failure
            return False
        except OSError as exc:  # e.g. the agent is not in group adm: say so
            self.error = f"cannot read {self.path}: {exc.strerror or exc}"
            return False
        self.error = ""
        self._use(fd, os.fstat(fd).st_size if offset_at_end else 0)
        return True

    def _rotated(self) -> list[str]:
        names: list[str] = []
        for pattern in self._globs:
            where = Path(pattern)
            names.extend(sorted((str(p) for p in where.parent.glob(where.name)), reverse=True))
        return [name for name in names if Path(name) != self.path]

    def _open_copy(self, checkpoint: Checkpoint, by_inode: bool) -> bool:
        """Open the rotated file holding the rest of checkpoint's content; True if found."""
        for name in self._rotated():
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOCTTY)
            except OSError:
                continue
            st = os.fstat(fd)
            same = (
                (st.st_dev, st.st_ino) == (checkpoint.dev, checkpoint.ino)
                if by_inode
                else st.st_size >= checkpoint.offset
            )
            if (
                same
                and st.st_size >= checkpoint.offset
                and (_head_digest(fd, checkpoint.head_len) == checkpoint.head)
            ):
                self._use(fd, checkpoint.offset, checkpoint.head, checkpoint.head_len)
                self._switch_at_eof = True
                log.info("reading the rest of %s from rotated %s", self.path, name)
                return True
            os.close(fd)
        return False

    def _open_first(self) -> None:
        checkpoint, self._resume = self._resume, None
        if checkpoint is None:
            self._open_path(offset_at_end=self._start_at_end)
            return
        try:
            st = self.path.stat()
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (checkpoint.dev, checkpoint.ino):
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY)
            except OSError as exc:
                self._resume = checkpoint  # try again next cycle, from the same place
                self.error = f"cannot read {self.path}: {exc.strerror or exc}"
                return
            if st.st_size >= checkpoint.offset and (
                _head_digest(fd, checkpoint.head_len) == checkpoint.head
            ):
                self._use(fd, checkpoint.offset, checkpoint.head, checkpoint.head_len)
                return
            os.close(fd)
            if self._open_copy(checkpoint, by_inode=False):  # copytruncated while down
                return  # the copy holds the same line at the offset: restored_skip holds
            self.restored_skip = 0
            log.warning(
                "%s was truncated while the agent was stopped and no rotated "
                "copy matches; reading it from the start",
                self.path,
            )
            self._open_path()
            return
        if self._open_copy(checkpoint, by_inode=True):  # renamed while the agent was down
            return
        self.restored_skip = 0
        log.warning(
            "%s: the file last read is gone; reading the current file from the start", self.path
        )
        self._open_path()

    # --- reading ---------------------------------------------------------------------
    def read(self, max_lines: int) -> list[Line]:
        """Up to max_lines complete lines; handles rotation first."""
        lines: list[Line] = []
        if self._fd is None:
            self._open_first()
            if self._fd is None:
                if self._resume is None:
                    self._start_at_end = False  # a log created later is new: read all of it
                return lines
        try:
            if not self._follow_truncation():
                self._follow_rotation()
            if (
                self._fd is not None
                and len(lines) < max_lines
                and self._read_into(lines, max_lines, final=self._switch_at_eof)
                and self._switch_at_eof
            ):
                self._advance()
        except OSError as exc:  # EIO on a failing disk, a directory in the log's place, ...
            self.error = f"cannot read {self.path}: {exc.strerror or exc}"
        return lines

    def _follow_rotation(self) -> None:
        if self._fd is None or self._switch_at_eof:
            return
        try:
            st: os.stat_result | None = self.path.stat()
        except OSError:
            st = None
        own = os.fstat(self._fd)
        renamed = st is None or (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino)
        # Renamed away (or deleted): the writer may still append until it reopens,
        # so switch only once the new file has data (or the old one is deleted).
        if renamed and ((st is not None and st.st_size > 0) or own.st_nlink == 0):
            self._switch_at_eof = True

    def _follow_truncation(self) -> bool:
        """copytruncate on the open file: read the rest from the copy, then it from 0."""
        if self._fd is None or self._switch_at_eof:
            return False
        own = os.fstat(self._fd)
        self._update_head()
        if own.st_size >= self._read_pos and not (
            self._head_len and _head_digest(self._fd, self._head_len) != self._head
        ):
            return False
        # The truncated file may also have been renamed since (a copytruncate and a
        # rename between two reads): keep it open and come back to it, not to the path.
        truncated = os.dup(self._fd)
        checkpoint = self.position()
        if checkpoint is not None and self._open_copy(checkpoint, by_inode=False):
            self._then_fd = truncated
        else:
            log.warning(
                "%s was truncated and no rotated copy matches the part not yet "
                "read; continuing from its start",
                self.path,
            )
            self._use(truncated, 0)
        return True

    def _advance(self) -> None:
        """The old file is finished: continue with the truncated one, else with the path."""
        if self._then_fd is not None:
            fd, self._then_fd = self._then_fd, None
            self._use(fd, 0)
        else:
            self._open_path()

    def _read_into(self, lines: list[Line], max_lines: int, final: bool) -> bool:
        """Read lines into lines; True once the end of the file was reached."""
        if self._fd is None:
            return False
        while len(lines) < max_lines:
            if not self._discarding:
                newline = self._buf.find(b"\n", self._consumed)
                if newline >= 0:
                    line = self._buf[self._consumed : newline]
                    self._consumed = newline + 1
                    self._emit(lines, line, len(line) + 1, oversized=False)
                    continue
                # Drop what was consumed once per chunk, not once per line (quadratic).
                self._buf, self._consumed = self._buf[self._consumed :], 0
                if len(self._buf) > self._max_line:
                    self._discarding = True
                    self._skipped = len(self._buf) - self._keep
                    self._buf = self._buf[: self._keep]
            chunk = os.pread(self._fd, CHUNK, self._read_pos)
            if self._head_from_zero and self._read_pos < HEAD_BYTES:
                self._head_bytes += chunk[: HEAD_BYTES - self._read_pos]
            if not chunk:
                if final and (self._buf or self._discarding):
                    self._finish_partial(lines)
                return True
            self._read_pos += len(chunk)
            if self._discarding:
                chunk_newline = chunk.find(b"\n")
                if chunk_newline < 0:
                    self._skipped += len(chunk)
                    continue
                self._skipped += chunk_newline
                length = len(self._buf) + self._skipped + 1
                self._emit(lines, self._buf, length, oversized=True)
                self._discarding = False
                self._buf = chunk[chunk_newline + 1 :]
                continue
            self._buf += chunk
        return False

    def _finish_partial(self, lines: list[Line]) -> None:
        length = len(self._buf) + (self._skipped if self._discarding else 0)
        self._emit(lines, self._buf, length, oversized=self._discarding)
        self._buf, self._discarding = b"", False

    def _emit(self, lines: list[Line], data: bytes, length: int, oversized: bool) -> None:
        self._update_head()
        start = Checkpoint(self._dev, self._ino, self._offset, self._head, self._head_len)
        lines.append(Line(data[: self._keep] if oversized else data, start, oversized))
        self._offset += length

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def shutdown(self) -> None:
        """Release every file held (close() only drops the one being read)."""
        self.close()
        if self._then_fd is not None:
            os.close(self._then_fd)
            self._then_fd = None
