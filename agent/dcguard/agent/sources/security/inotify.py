"""Linux inotify through ctypes: recursive directory watches that never enter network mounts.

Why inotify and not a periodic scan: a scan of 100,000 files costs the same
whether anything changed or not and sees an encryption only after the next
pass; inotify costs nothing on an idle tree and tells within milliseconds
which files were written, renamed or deleted. Why ctypes: the three calls
are in every libc, and no dependency is needed for them.

Watches are per directory. New subdirectories are watched as they appear
(and walked, since files may land in them before the watch exists). A mount
of a network filesystem (NFS, CIFS, sshfs...) is never entered. The kernel's
limit (fs.inotify.max_user_watches) and our own bound are counted, not fatal;
an IN_Q_OVERFLOW (the kernel dropped events) is reported to the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import posixpath
import select
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from dcguard.agent.sources.filesystem import parse_mounts
from dcguard.agent.sources.storage.blockdev import NETWORK_FSTYPES

__all__ = ["FileEvent", "Inotify", "InotifyError"]

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

# What a watcher of data needs: content written, names moved, files created and
# deleted. Reads (IN_ACCESS, IN_OPEN) are left out on purpose: a backup reading every
# file must cost the watcher nothing.
WATCH_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
_HEADER = struct.Struct("iIII")
_READ_BYTES = 256 * 1024


class InotifyError(OSError):
    """inotify is unavailable (not Linux, no libc, or inotify_init refused)."""


@dataclass(frozen=True)
class FileEvent:
    """One kernel event: full path, mask, rename cookie, and whether it names a directory."""

    path: str
    mask: int
    cookie: int
    is_dir: bool


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise InotifyError(errno.ENOSYS, f"libc not loadable: {exc}") from exc


class Inotify:
    """One inotify instance watching directory trees; read() returns FileEvents."""

    def __init__(self, max_watches: int, mounts_file: Path = Path("/proc/self/mounts")) -> None:
        self._libc = _libc()
        if not hasattr(self._libc, "inotify_init1"):
            raise InotifyError(errno.ENOSYS, "inotify is not available on this system")
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise InotifyError(code, f"inotify_init1: {os.strerror(code)}")
        self._fd = fd
        # wake() writes here so a read() blocked without timeout returns (close, a waiter).
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._max_watches = max_watches
        self._mounts_file = mounts_file
        self._paths: dict[int, str] = {}
        self._wds: dict[str, int] = {}
        self._network: tuple[str, ...] | None = None
        self.overflows = 0
        self.refused = 0  # directories not watched: a limit was reached
        self.skipped_network = 0
        self._warned_limit = False

    @property
    def watched(self) -> int:
        """Directories under watch now."""
        return len(self._wds)

    def _network_mounts(self) -> tuple[str, ...]:
        if self._network is None:
            try:
                text = self._mounts_file.read_text(errors="replace")
            except OSError:
                text = ""
            self._network = tuple(
                mount.mountpoint.rstrip("/") or "/"
                for mount in parse_mounts(text)
                if mount.fstype in NETWORK_FSTYPES
            )
        return self._network

    def is_network(self, path: str) -> bool:
        """True if path lies on a network filesystem (checked from the mount table)."""
        return _under_any(path, self._network_mounts())

    def watch_tree(self, root: str, excluded: tuple[str, ...] = ()) -> list[str]:
        """Watch root and every directory below it (bounded); returns the files found.

        The files are returned so a caller can look at those that appeared in a
        new directory before its watch existed. Symlinks are never followed.
        """
        files: list[str] = []
        pending = [root]
        root_dev = -1
        while pending:
            directory = pending.pop()
            if _under_any(directory, excluded):
                continue
            try:
                # The root as configured may be a symlink (/srv/share -> /data/share); below it
                # nothing is followed.
                st = os.stat(directory) if root_dev == -1 else os.lstat(directory)  # noqa: PTH116
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            if root_dev == -1:
                root_dev = st.st_dev
            if st.st_dev != root_dev and self.is_network(directory):
                self.skipped_network += 1
                continue
            if not self._add(directory):
                continue
            try:
                with os.scandir(directory) as listing:
                    for entry in listing:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            files.append(entry.path)
            except OSError:
                continue
        return files

    def _add(self, directory: str) -> bool:
        if directory in self._wds:
            return True
        if len(self._wds) >= self._max_watches:
            self._refuse(directory, "security.ransomware.max_directories")
            return False
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC:
                self._refuse(directory, "the sysctl fs.inotify.max_user_watches")
            return False
        self._wds[directory] = wd
        self._paths[wd] = directory
        return True

    def _refuse(self, directory: str, limit: str) -> None:
        self.refused += 1
        if not self._warned_limit:
            self._warned_limit = True
            log.warning(
                "ransomware: %d directories watched; %s and what follows are not (raise %s)",
                len(self._wds),
                directory,
                limit,
            )

    def wake(self) -> None:
        """Make a blocked read() return now (from another thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"w")

    def read(self, timeout: float | None) -> list[FileEvent]:
        """Events available within timeout seconds (None: until an event or wake())."""
        ready, _, _ = select.select([self._fd, self._wake_read], [], [], timeout)
        if self._wake_read in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_read, 4096)
        if self._fd not in ready:
            return []
        events: list[FileEvent] = []
        while True:
            try:
                data = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                break
            events.extend(self._parse(data))
            if len(data) < _READ_BYTES // 2:
                break
        return events

    def _parse(self, data: bytes) -> list[FileEvent]:
        events: list[FileEvent] = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            raw_name = data[offset : offset + length].split(b"\0", 1)[0]
            offset += length
            if mask & IN_Q_OVERFLOW:
                self.overflows += 1
                events.append(FileEvent("", mask, 0, False))
                continue
            directory = self._paths.get(wd)
            if directory is None:
                continue
            if mask & IN_IGNORED:  # the directory went away (or was unmounted)
                self._paths.pop(wd, None)
                self._wds.pop(directory, None)
                continue
            path = posixpath.join(directory, os.fsdecode(raw_name)) if raw_name else directory
            events.append(FileEvent(path, mask, cookie, bool(mask & IN_ISDIR)))
        return events

    def forget(self, directory: str) -> None:
        """Drop the bookkeeping of a directory moved away (its watch follows the inode)."""
        prefix = directory.rstrip("/") + "/"
        for path in [p for p in self._wds if p == directory or p.startswith(prefix)]:
            wd = self._wds.pop(path)
            self._paths.pop(wd, None)
            self._libc.inotify_rm_watch(self._fd, wd)

    def close(self) -> None:
        if self._fd >= 0:
            for fd in (self._fd, self._wake_read, self._wake_write):
                os.close(fd)
            self._fd = -1


def _under_any(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)
