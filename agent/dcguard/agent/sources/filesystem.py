"""filesystem: size, free space, inodes and read-only state of every real mounted filesystem.

Pseudo filesystems are skipped by type and by mount point. Every statvfs
runs in a long-lived worker thread with a deadline: a hung network mount is reported
with error "timeout" instead of hanging the agent (node_exporter #244,
#3058). A mount that timed out is not stat'ed again until its stuck call
returns, so a dead NFS server does not pile up threads.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import select
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.v1 import collector_pb2 as pb

__all__ = ["FilesystemSource", "Mount", "StatWatcher", "parse_mounts"]

log = logging.getLogger(__name__)

DEFAULT_EXCLUDE_FSTYPES = (
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "erofs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nfsd",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
)
DEFAULT_EXCLUDE_MOUNTPOINTS = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    readonly: bool


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount fields as \ooo.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/self/mounts; malformed lines are skipped. Later mounts hide earlier ones."""
    by_mountpoint: dict[str, Mount] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        device, mountpoint, fstype, options = fields[:4]
        mount = Mount(
            device=_unescape(device),
            mountpoint=_unescape(mountpoint),
            fstype=fstype,
            readonly="ro" in options.split(","),
        )
        by_mountpoint.pop(mount.mountpoint, None)
        by_mountpoint[mount.mountpoint] = mount
    return list(by_mountpoint.values())


StatFunction = Callable[[str], os.statvfs_result]


_Job = tuple[str, list["os.statvfs_result | str"], threading.Lock]


class StatWatcher:
    """Runs statvfs with a deadline and remembers mounts whose call is still stuck.

    The calls run one at a time in one long-lived worker thread (starting a
    thread per call cost more than the call). A worker whose call misses the
    deadline is left to finish it and then exit; the next call gets a new one.
    Called from one thread (the report loop).
    """

    def __init__(self, timeout: float, statvfs: StatFunction = os.statvfs) -> None:
        self._timeout = timeout
        self._statvfs = statvfs
        self._stuck: set[str] = set()
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def stuck(self) -> set[str]:
        with self._lock:
            return set(self._stuck)

    def stat(self, mountpoint: str) -> os.statvfs_result | str:
        """The statvfs result, or an error string ("timeout", "still stuck", an OS error)."""
        with self._lock:
            if mountpoint in self._stuck:
                return "timeout"
            self._stuck.add(mountpoint)
        jobs = self._jobs
        if jobs is None:
            jobs = self._jobs = queue.SimpleQueue()
            threading.Thread(target=self._work, args=(jobs,), name="statvfs", daemon=True).start()
        outcome: list[os.statvfs_result | str] = []
        done = threading.Lock()
        done.acquire()
        jobs.put((mountpoint, outcome, done))
        if done.acquire(timeout=self._timeout):
            return outcome[0]
        # The worker is stuck in this call: it exits once the call returns.
        jobs.put(None)
        self._jobs = None
        log.warning(
            "statvfs(%s) did not return within %gs; reporting it as stuck",
            mountpoint,
            self._timeout,
        )
        return "timeout"

    def close(self) -> None:
        """Let the worker exit (a stuck one once its call returns)."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    def _work(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            mountpoint, outcome, done = job
            try:
                outcome.append(self._statvfs(mountpoint))
            except OSError as exc:
                outcome.append(exc.strerror or str(exc))
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one mount
                outcome.append(f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._stuck.discard(mountpoint)
                done.release()


class _MountTable:
    """A /proc mounts file, read again only once the kernel says the mount table changed.

    The kernel flags every mount, unmount and remount in the namespace to
    poll() on an open mounts file as POLLPRI|POLLERR (what systemd watches),
    once per open file; the file is read from the start again after each
    flag, so a change during a read is flagged again and read on the next call.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1
        self._poll = select.poll()
        self._close: Callable[[], object] | None = None

    def changed(self) -> str | None:
        """The file's text if it may have changed since the last call, else None."""
        if self._close is None:
            self._fd = os.open(self._path, os.O_RDONLY)
            finalizer = weakref.finalize(self, os.close, self._fd)
            finalizer.atexit = False  # never close it under a late call at exit
            self._close = finalizer
            self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
        elif not self._poll.poll(0):
            return None
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._close is not None:
            self._poll.unregister(self._fd)
            self._close()
            self._close = None


class FilesystemSource:
    name = "filesystem"

    def __init__(
        self,
        mounts_file: Path,
        exclude_fstypes: frozenset[str],
        exclude_mountpoints: re.Pattern[str],
        watcher: StatWatcher,
    ) -> None:
        self._mounts_file = mounts_file
        self._exclude_fstypes = exclude_fstypes
        self._exclude_mountpoints = exclude_mountpoints
        self._watcher = watcher
        self._table = _MountTable(mounts_file) if str(mounts_file).startswith("/proc/") else None
        self._mounts: list[Mount] = []

    def mounts(self) -> list[Mount]:
        """The mounts this source reports on, pseudo filesystems left out."""
        if self._table is not None:
            text = self._table.changed()
            if text is None:
                return self._mounts
        else:
            text = self._mounts_file.read_text(encoding="utf-8", errors="replace")
        self._mounts = [
            m
            for m in parse_mounts(text)
            if m.fstype not in self._exclude_fstypes
            and not self._exclude_mountpoints.search(m.mountpoint)
        ]
        return self._mounts

    def collect(self, report: pb.Report) -> None:
        for mount in self.mounts():
            entry = report.filesystems.add(
                mountpoint=mount.mountpoint,
                device=mount.device,
                fstype=mount.fstype,
                readonly=mount.readonly,
            )
            result = self._watcher.stat(mount.mountpoint)
            if isinstance(result, str):
                entry.error = result
                continue
            entry.size_bytes = result.f_blocks * result.f_frsize
            entry.avail_bytes = result.f_bavail * result.f_frsize
            entry.free_bytes = result.f_bfree * result.f_frsize
            entry.files = result.f_files
            entry.files_free = result.f_ffree
            entry.readonly = entry.readonly or bool(result.f_flag & os.ST_RDONLY)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self._watcher.close()
        if self._table is not None:
            self._table.close()


@register("filesystem", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    table = config.table("filesystem")
    mounts_file = table.path("mounts_file", str(context.proc_root / "self/mounts"))
    timeout = table.duration("stat_timeout", "5s", minimum=0.001)
    fstypes = table.string_list("exclude_fstypes", list(DEFAULT_EXCLUDE_FSTYPES))
    pattern_text = table.string(
        "exclude_mountpoints", DEFAULT_EXCLUDE_MOUNTPOINTS, allow_empty=True
    )
    try:
        pattern = re.compile(pattern_text or r"(?!)")
    except re.error as exc:
        raise table.error(
            "exclude_mountpoints", tr("invalid regular expression: {error}", error=exc)
        ) from None
    table.finish()
    return FilesystemSource(mounts_file, frozenset(fstypes), pattern, StatWatcher(timeout))
