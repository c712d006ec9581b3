"""What the agent keeps in its state directory: its instance id and sequence numbers.

Files are replaced atomically (write, fsync, rename, fsync the directory) so
a crash or power loss leaves either the old or the new value, never a torn
one. The sequence is persisted before a report carrying it leaves the agent:
after any restart the next report gets a higher number, never a reused one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["AgentState", "atomic_write"]


def atomic_write(path: Path, data: bytes) -> None:
    """Replace path with data so that readers see either the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class AgentState:
    """The agent's identity and counters under state_dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._sequence_file = state_dir / "sequence"
        self._acked_file = state_dir / "acked_sequence"
        self._instance_file = state_dir / "instance_id"
        self._sequence: int | None = None

    def open(self) -> None:
        """Create the state directory and instance id on first use."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._instance_file.exists():
            atomic_write(self._instance_file, uuid.uuid4().hex.encode())

    @property
    def instance_id(self) -> str:
        try:
            return self._instance_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def _read_int(self, path: Path) -> int:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return 0
        # A corrupt counter must not reuse sequences: refuse to guess.
        if not text.isdigit():
            raise ValueError(f"{path} is corrupt ({text[:20]!r}); "
                             "remove the state directory to start a new agent instance")
        return int(text)

    @property
    def last_sequence(self) -> int:
        """The last sequence number handed out (0 before the first report)."""
        if self._sequence is None:
            self._sequence = self._read_int(self._sequence_file)
        return self._sequence

    def next_sequence(self) -> int:
        """Hand out and persist the next sequence number."""
        value = self.last_sequence + 1
        atomic_write(self._sequence_file, str(value).encode())
        self._sequence = value
        return value

    @property
    def acked_sequence(self) -> int:
        """The highest sequence the collector has acknowledged as stored."""
        return self._read_int(self._acked_file)

    def record_ack(self, sequence: int) -> None:
        atomic_write(self._acked_file, str(sequence).encode())
