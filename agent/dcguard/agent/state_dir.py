"""What the agent keeps in its state directory: its instance id, and the one-runner lock.

Sequence numbers, acknowledgements and drop counts live with the reports in
the spool (spool.py), so they can never disagree with what was spooled.
Files are replaced atomically (write, fsync, rename, fsync the directory) so
a crash or power loss leaves either the old or the new value, never a torn one.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path
from typing import IO

__all__ = ["AgentState", "StateLocked", "atomic_write", "fsync_directory"]


def fsync_directory(directory: Path) -> None:
    """Make a file's creation, rename or removal in directory survive power loss."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace path with data so that readers see either the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fsync_directory(path.parent)


class StateLocked(Exception):
    """Another dcguard-agent run already uses this state directory."""


class AgentState:
    """The agent's identity under state_dir, and the lock that keeps one runner per dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.spool_dir = state_dir / "spool"
        self._instance_file = state_dir / "instance_id"
        self._lock: IO[bytes] | None = None

    def open(self) -> None:
        """Create the state directory and instance id on first use."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._instance_file.exists():
            atomic_write(self._instance_file, uuid.uuid4().hex.encode())

    def lock(self) -> None:
        """Take the runner lock (released when the process exits, even by kill -9).

        Two runners on one spool would hand out the same sequences; readers such
        as `status` never take this lock, so they never block the runner.
        """
        # Held open for the life of the process: the lock goes with the descriptor.
        handle = open(self.state_dir / "run.lock", "ab")  # noqa: SIM115
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StateLocked(
                f"another dcguard-agent is running with state_dir {self.state_dir}"
            ) from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def instance_id(self) -> str:
        try:
            return self._instance_file.read_text().strip()
        except FileNotFoundError:
            return ""
