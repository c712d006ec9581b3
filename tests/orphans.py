"""Every process the suite starts must be gone when the suite ends.

pytest makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so a
process whose parent exited (a journalctl left by a killed agent, a daemon a
test forked) is re-parented to pytest instead of init and can still be found
among pytest's descendants. After each test the new descendants are noted
with the test's id; at the end of the session any that still live are
listed with the test that started them, killed, and the session fails.

The pytest side (fixture and hook) is in tests/guards.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Leak", "Tracker", "become_subreaper", "descendants"]

PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 5.0  # a process being stopped at the end may take a moment to exit


def become_subreaper() -> bool:
    """Make orphans of this process's descendants its children; False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a live process; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), fields[0]


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:300] or "?"


def descendants(root: int) -> set[int]:
    """Live (non-zombie) descendants of root, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[1] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _reap() -> None:
    """Collect exit statuses of orphans re-parented to us, so they stop being zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Leak:
    pid: int
    command: str
    test: str


class Tracker:
    """Notes which test started each descendant; finds and kills the survivors."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.started_by: dict[int, str] = {}
        self.subreaper = become_subreaper()

    def current(self) -> set[int]:
        _reap()
        return descendants(self.pid)

    def note(self, before: set[int], test: str) -> None:
        for pid in self.current() - before:
            self.started_by.setdefault(pid, test)

    def survivors(self) -> list[Leak]:
        """Descendants still alive after a grace period, killed (with their groups)."""
        deadline = time.monotonic() + GRACE_SECONDS
        alive = self.current()
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = self.current()
        leaks = [
            Leak(pid, _command(pid), self.started_by.get(pid, "(before any test)"))
            for pid in sorted(alive)
        ]
        for leak in leaks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leak.pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap()
        return leaks
