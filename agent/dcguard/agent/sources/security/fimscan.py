"""File-integrity scanning: what each watched path looks like now, and how it changed.

A scan lstat()s every watched path (directories recursed, bounded), reuses
the previous hash when (mtime, ctime, size, inode) are unchanged, and hashes
the rest at a limited rate. Symlinks are recorded by their target, never
followed. diff() turns two snapshots into created / modified / deleted /
permission / owner changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Change", "RateLimiter", "diff", "package_activity", "scan", "technique_for"]

Entry = dict[str, Any]
Snapshot = dict[str, Entry]
CHUNK = 1 << 20

# (pattern on the path, MITRE technique, severity of a change), first match wins.
_CLASSES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"(^|/)authorized_keys2?$"), "T1098.004", "high"),
    (re.compile(r"(^|/)(passwd|shadow|group|gshadow)-?$"), "T1098", "high"),
    (re.compile(r"(^|/)sudoers(\.d(/|$)|$)"), "T1548.003", "high"),
    (re.compile(r"(^|/)sshd_config(\.d(/|$)|$)"), "T1021.004", "high"),
    (
        re.compile(r"(^|/)(crontab|cron\.(d|daily|hourly|weekly|monthly))(/|$)|/spool/cron/"),
        "T1053.003",
        "medium",
    ),
    (re.compile(r"/systemd/(system|user)(/|$)"), "T1543.002", "medium"),
]


def technique_for(path: str) -> tuple[str, str]:
    """The MITRE technique and severity of a change to path (T1565.001 for anything else)."""
    for pattern, technique, severity in _CLASSES:
        if pattern.search(path):
            return technique, severity
    return "T1565.001", "medium"


class RateLimiter:
    """Keeps hashing under bytes_per_second; waits on the stop Event so shutdown is prompt."""

    def __init__(
        self,
        bytes_per_second: int,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = bytes_per_second
        self._stop = stop
        self._clock = clock
        self._start = clock()
        self._bytes = 0

    def spend(self, amount: int) -> None:
        self._bytes += amount
        ahead = self._bytes / self._rate - (self._clock() - self._start)
        if ahead > 0:
            self._stop.wait(ahead)


@dataclass(frozen=True)
class Change:
    type: str  # file_created, file_modified, file_deleted, file_permissions_changed, ...
    path: str
    old: Entry | None
    new: Entry | None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _hash(path: str, limiter: RateLimiter, stop: threading.Event, max_bytes: int) -> str:
    digest = hashlib.sha256()
    # O_NOFOLLOW: the path was lstat'ed as a regular file; a swap to a symlink is refused.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        total = 0
        while not stop.is_set():
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return digest.hexdigest()
            total += len(chunk)
            if total > max_bytes:
                return "too-large"
            digest.update(chunk)
            limiter.spend(len(chunk))
        raise InterruptedError("stopping")
    finally:
        os.close(fd)


def _entry(
    path: str,
    st: os.stat_result,
    previous: Entry | None,
    limiter: RateLimiter,
    stop: threading.Event,
    max_bytes: int,
) -> Entry:
    kind = _kind(st.st_mode)
    entry: Entry = {
        "type": kind,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "sha256": "",
    }
    if kind == "link":
        target = str(Path(path).readlink())
        entry["sha256"] = hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()
    elif kind == "file":
        if (
            previous is not None
            and previous.get("sha256")
            and all(
                previous.get(key) == entry[key] for key in ("mtime_ns", "ctime_ns", "size", "ino")
            )
        ):
            entry["sha256"] = previous["sha256"]
        else:
            try:
                entry["sha256"] = _hash(path, limiter, stop, max_bytes)
            except OSError as exc:
                entry["sha256"] = f"error: {exc.strerror or exc}"
    return entry


def scan(
    roots: list[str],
    previous: Snapshot,
    limiter: RateLimiter,
    stop: threading.Event,
    max_files: int,
    max_file_bytes: int,
) -> tuple[Snapshot, bool]:
    """The current snapshot of roots; (snapshot, truncated) when max_files was reached."""
    current: Snapshot = {}
    pending = list(reversed(roots))
    while pending:
        if stop.is_set():
            raise InterruptedError("stopping")
        path = pending.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue  # absent (or vanished mid-scan): not in the snapshot
        if len(current) >= max_files:
            return current, True
        current[path] = _entry(path, st, previous.get(path), limiter, stop, max_file_bytes)
        if stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(path) as listing:
                    names = sorted((item.path for item in listing), reverse=True)
            except OSError:
                continue
            pending.extend(names)
    return current, False


def diff(old: Snapshot, new: Snapshot) -> list[Change]:
    """Changes from old to new, one per kind of change, in path order."""
    changes: list[Change] = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before is None:
            changes.append(Change("file_created", path, None, after))
            continue
        if after is None:
            changes.append(Change("file_deleted", path, before, None))
            continue
        if (
            before["type"] != after["type"]
            or before["sha256"] != after["sha256"]
            or (after["type"] == "file" and before["size"] != after["size"])
        ):
            changes.append(Change("file_modified", path, before, after))
        if before["mode"] != after["mode"]:
            changes.append(Change("file_permissions_changed", path, before, after))
        if (before["uid"], before["gid"]) != (after["uid"], after["gid"]):
            changes.append(Change("file_owner_changed", path, before, after))
    return changes


def _held_locks(proc_locks: Path) -> set[tuple[int, int, int]]:
    held: set[tuple[int, int, int]] = set()
    try:
        text = proc_locks.read_text()
    except OSError:
        return held
    for line in text.splitlines():
        fields = line.replace("->", " ").split()
        for field in fields:
            parts = field.split(":")
            if len(parts) == 3 and all(parts):  # MAJ:MIN:INODE, major/minor in hex
                try:
                    held.add((int(parts[0], 16), int(parts[1], 16), int(parts[2])))
                except ValueError:
                    continue
                break
    return held


def package_activity(locks: list[Path], logs: list[Path], proc_locks: Path, since: float) -> str:
    """Why the package manager counts as running ("lock held: X", "log written: Y"), or ""."""
    held = _held_locks(proc_locks)
    for lock in locks:
        try:
            st = lock.stat()
        except OSError:
            continue
        if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held:
            return f"lock held: {lock}"
    for log_path in logs:
        try:
            if log_path.stat().st_mtime >= since:
                return f"log written: {log_path}"
        except OSError:
            continue
    return ""
