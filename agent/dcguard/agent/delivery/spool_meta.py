"""The spool's two bookkeeping files: meta.json (durable) and position (fast, unsynced).

Their roles in the spool's durability contract are in spool.py's docstring;
here is only how each is read and written.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
import weakref
import zlib
from pathlib import Path

from dcguard.agent.state_dir import atomic_write, fsync_directory

__all__ = ["META_FIELDS", "PositionRecord", "read_meta", "write_meta"]

log = logging.getLogger("dcguard.agent.delivery.spool")

META_FIELDS = (
    "last_sequence",
    "removed_through",
    "acked_sequence",
    "dropped_total",
    "rejected_total",
)
_META = "meta.json"
_POSITION = "position"
# magic | last_sequence | acked_sequence | removed_through, then a CRC32 of those.
_POSITION_BODY = struct.Struct(">4sQQQ")
_POSITION_MAGIC = b"DGP1"
_POSITION_FIELDS = ("last_sequence", "acked_sequence", "removed_through")


def read_meta(directory: Path, into: dict[str, int]) -> None:
    """Take meta.json's valid non-negative integers into `into`; a missing file changes nothing."""
    path = directory / _META
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        # A wrong user or path is the operator's to fix: let it fail in one line.
        if isinstance(exc, OSError) and exc.errno != errno.EIO:
            raise
        # atomic_write makes this a disk fault; the records still carry the sequence.
        log.error("spool %s is unreadable (%s); continuing from the records", path, exc)
        return
    if isinstance(loaded, dict):
        for key in META_FIELDS:
            value = loaded.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                into[key] = value


def write_meta(directory: Path, meta: dict[str, int]) -> None:
    """Replace meta.json atomically and durably (fsync of the file and the directory)."""
    atomic_write(directory / _META, json.dumps(meta, sort_keys=True).encode())


class PositionRecord:
    """One 32-byte CRC-checked record, overwritten in place and never fsynced after creation."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    @staticmethod
    def _encode(meta: dict[str, int]) -> bytes:
        body = _POSITION_BODY.pack(_POSITION_MAGIC, *(meta[key] for key in _POSITION_FIELDS))
        return body + zlib.crc32(body).to_bytes(4, "big")

    def merge_into(self, meta: dict[str, int], *, read_only: bool) -> None:
        """Raise meta's fields to the record's; a torn, empty or corrupt one is ignored."""
        path = self.directory / _POSITION
        size = _POSITION_BODY.size
        # A read-only view may read while the runner overwrites it: try again.
        for _ in range(3 if read_only else 1):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return
            if len(data) == size + 4 and zlib.crc32(data[:size]) == int.from_bytes(
                data[size:], "big"
            ):
                magic, *values = _POSITION_BODY.unpack_from(data)
                if magic == _POSITION_MAGIC:
                    for key, value in zip(_POSITION_FIELDS, values):
                        meta[key] = max(meta[key], value)
                    return
        if not read_only:
            log.warning(
                "spool %s is torn or corrupt (%d bytes); continuing from meta.json "
                "and the records: acknowledged reports may be sent again",
                path,
                len(data),
            )

    def open(self, meta: dict[str, int]) -> None:
        """Open for in-place writes, writing meta's values; size and inode made durable once."""
        if self._fd is not None:
            return
        # Not O_APPEND, which would make pwrite append on Linux.
        fd = os.open(self.directory / _POSITION, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            data = self._encode(meta)
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
            fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            raise
        # Kept open for one pwrite per update; closed when this object goes away, but
        # not at interpreter exit, while a daemon delivery thread may still ack.
        self._fd = fd
        weakref.finalize(self, os.close, fd).atexit = False

    def write(self, meta: dict[str, int]) -> None:
        """Overwrite the record in place, without fsync; nothing before open()."""
        if self._fd is not None:
            os.pwrite(self._fd, self._encode(meta), 0)
