"""Frames between the collector and its ingest processes: a length, then a pickle.

The socket is a private socketpair between the collector and a child it
started itself (same program, same user), so what arrives was written by
our own code; nothing from the network is unpickled, only our values
carrying it as bytes.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
import struct
import threading
from collections.abc import Iterable

__all__ = ["FrameSocket", "encode"]

_HEADER = struct.Struct("!I")
_READ_SIZE = 1 << 20


def encode(frames: Iterable[object]) -> bytes:
    """The frames as they go on the wire."""
    parts = []
    for frame in frames:
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        parts += [_HEADER.pack(len(data)), data]
    return b"".join(parts)


class FrameSocket:
    """Sends and receives whole frames on a stream socket; sends are thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, *frames: object) -> None:
        self.send_all(frames)

    def send_all(self, frames: Iterable[object]) -> None:
        """Send the frames with one write (raises OSError if the peer is gone)."""
        data = encode(frames)
        with self._send_lock:
            self.sock.sendall(data)

    def receive(self) -> list[object]:
        """The frames completed by one read (maybe none); EOFError once the peer closed."""
        chunk = self.sock.recv(_READ_SIZE)
        if not chunk:
            raise EOFError("the peer closed the socket")
        self._buffer += chunk
        frames: list[object] = []
        offset = 0
        while len(self._buffer) - offset >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer, offset)
            end = offset + _HEADER.size + length
            if len(self._buffer) < end:
                break
            # Our own child's values (see the module docstring).
            frames.append(pickle.loads(self._buffer[offset + _HEADER.size:end]))  # noqa: S301
            offset = end
        del self._buffer[:offset]
        return frames

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
