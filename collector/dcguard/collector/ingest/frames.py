"""Frames between the collector and its ingest processes: plain data, never pickles.

A frame is a tuple such as ("submit", 7, admission). On the wire: its length,
the length of a JSON header, the header, then the raw bytes it refers to
(request and reply payloads travel as they are, not as base64). Only the
call values named below are carried (calls.py, identity.py, errors.py and
WorkerSettings); anything else is a programming error, found at the sender.
Even on a private socketpair between the collector and its own child, a
decoder that can build only these values cannot be made to run code.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from dcguard.collector.calls import Admission, RenewCall, Reply
from dcguard.collector.config import ServerConfig
from dcguard.collector.errors import Rejection
from dcguard.collector.identity import PeerIdentity
from dcguard.collector.limits import Limits
from dcguard.collector.store import Database, PostgresDatabase

__all__ = ["FrameError", "FrameSocket", "WorkerSettings", "decode", "encode"]

_HEADER = struct.Struct("!II")  # frame length (after this header), JSON header length
_READ_SIZE = 1 << 20


class FrameError(OSError):
    """A frame that does not decode into the values above: the channel is broken.

    An OSError, so every reader treats it as it treats a peer gone: the
    collector replaces the child, a child exits.
    """


@dataclass(frozen=True)
class _EnrollListen:
    enroll_listen: str


@dataclass(frozen=True)
class WorkerSettings:
    """What an ingest process needs of the collector's config (a GrpcSettings for its server)."""

    grpc_listen: str
    insecure: bool
    tls_dir: Path
    database: Database
    max_message_bytes: int
    log_level: str
    enroll_listen: str
    limits: Limits

    @classmethod
    def of(cls, config: ServerConfig) -> WorkerSettings:
        return cls(
            config.grpc_listen,
            config.insecure,
            config.tls_dir,
            config.database,
            config.max_message_bytes,
            config.log_level,
            config.tls.enroll_listen,
            config.limits,
        )

    @property
    def tls(self) -> _EnrollListen:
        return _EnrollListen(self.enroll_listen)


def _status(name: str | None) -> grpc.StatusCode | None:
    if name is None:
        return None
    try:
        return grpc.StatusCode[name]
    except KeyError:
        raise FrameError(f"unknown status {name!r}") from None


class _Encoder:
    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.size = 0

    def bytes_ref(self, data: bytes) -> dict[str, Any]:
        ref = {"b": [self.size, len(data)]}
        self.blobs.append(data)
        self.size += len(data)
        return ref

    def value(self, value: object) -> Any:  # noqa: PLR0911 - one branch per carried type
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, bytes):
            return self.bytes_ref(value)
        if isinstance(value, PeerIdentity):
            return {"id": [value.host, value.department]}
        if isinstance(value, Rejection):
            return {
                "rej": [
                    value.code.name,
                    value.reason,
                    value.message,
                    value.retry_after,
                    self.value(value.identity),
                ]
            }
        if isinstance(value, Admission):
            return {
                "adm": [
                    value.peer,
                    value.received_at,
                    value.reports,
                    self.value(value.identity),
                    self.value(value.rejection),
                    self.bytes_ref(value.data),
                ]
            }
        if isinstance(value, RenewCall):
            return {
                "ren": [
                    value.peer,
                    self.bytes_ref(value.data),
                    self.value(value.identity),
                    self.value(value.rejection),
                ]
            }
        if isinstance(value, Reply):
            return {
                "rep": [
                    self.bytes_ref(value.payload),
                    value.code.name if value.code is not None else None,
                    value.message,
                    value.retry_after_ms,
                ]
            }
        if isinstance(value, WorkerSettings):
            fields = asdict(value)
            fields["tls_dir"] = str(value.tls_dir)
            # A PostgreSQL store goes with its password: this socket is the
            # collector's own, to its own child (the child needs the registry).
            database = value.database
            fields["database"] = (
                {"dsn": database.dsn, "password": database.password}
                if isinstance(database, PostgresDatabase)
                else str(database)
            )
            return {"cfg": fields}
        raise TypeError(f"an ingest frame cannot carry {type(value).__name__}")


def encode(frames: Iterable[tuple[object, ...]]) -> bytes:
    """The frames as they go on the wire."""
    parts = []
    for frame in frames:
        encoder = _Encoder()
        header = json.dumps([encoder.value(v) for v in frame], separators=(",", ":")).encode()
        parts += [_HEADER.pack(len(header) + encoder.size, len(header)), header, *encoder.blobs]
    return b"".join(parts)


class _Decoder:
    def __init__(self, blobs: memoryview) -> None:
        self.blobs = blobs

    def value(self, value: Any) -> Any:  # noqa: PLR0911 - one branch per carried type
        if not isinstance(value, dict):
            if isinstance(value, list):
                raise FrameError("a frame carries no bare lists")
            return value
        if len(value) != 1:
            raise FrameError("a tagged value has one tag")
        ((tag, body),) = value.items()
        if tag == "b":
            offset, length = body
            if offset < 0 or length < 0 or offset + length > len(self.blobs):
                raise FrameError("a bytes reference outside the frame")
            return bytes(self.blobs[offset : offset + length])
        if tag == "id":
            return PeerIdentity(*body)
        if tag == "rej":
            code, reason, message, retry_after, identity = body
            return Rejection(
                _status(code) or grpc.StatusCode.UNKNOWN,
                reason,
                message,
                retry_after,
                self.value(identity),
            )
        if tag == "adm":
            peer, received_at, reports, identity, rejection, data = body
            return Admission(
                peer,
                received_at,
                reports,
                self.value(identity),
                self.value(rejection),
                self.value(data),
            )
        if tag == "ren":
            peer, data, identity, rejection = body
            return RenewCall(peer, self.value(data), self.value(identity), self.value(rejection))
        if tag == "rep":
            payload, code, message, retry_after_ms = body
            return Reply(self.value(payload), _status(code), message, retry_after_ms)
        if tag == "cfg":
            fields = dict(body)
            fields["tls_dir"] = Path(body["tls_dir"])
            database = body["database"]
            fields["database"] = (
                PostgresDatabase(str(database["dsn"]), database["password"])
                if isinstance(database, dict)
                else Path(database)
            )
            fields["limits"] = Limits(**body["limits"])
            return WorkerSettings(**fields)
        raise FrameError(f"unknown tag {tag!r}")


def decode(frame: bytes | bytearray, header_length: int) -> tuple[Any, ...]:
    """One frame's values; FrameError when it is not one of ours."""
    view = memoryview(frame)
    try:
        header = json.loads(bytes(view[:header_length]))
        if not isinstance(header, list):
            raise FrameError("a frame is a list of values")
        decoder = _Decoder(view[header_length:])
        return tuple(decoder.value(v) for v in header)
    except (ValueError, TypeError, KeyError) as exc:
        raise FrameError(f"not an ingest frame: {exc}") from None


class FrameSocket:
    """Sends and receives whole frames on a stream socket; sends are thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, *frames: tuple[object, ...]) -> None:
        self.send_all(frames)

    def send_all(self, frames: Iterable[tuple[object, ...]]) -> None:
        """Send the frames with one write (raises OSError if the peer is gone)."""
        data = encode(frames)
        with self._send_lock:
            self.sock.sendall(data)

    def receive(self) -> list[tuple[Any, ...]]:
        """The frames completed by one read (maybe none); EOFError once the peer closed."""
        chunk = self.sock.recv(_READ_SIZE)
        if not chunk:
            raise EOFError("the peer closed the socket")
        self._buffer += chunk
        frames: list[tuple[Any, ...]] = []
        offset = 0
        while len(self._buffer) - offset >= _HEADER.size:
            length, header_length = _HEADER.unpack_from(self._buffer, offset)
            end = offset + _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(decode(self._buffer[offset + _HEADER.size : end], header_length))
            offset = end
        del self._buffer[:offset]
        return frames

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
