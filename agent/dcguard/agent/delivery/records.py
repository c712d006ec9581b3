"""The spool's on-disk record framing: find every intact record, skip anything torn.

A record is MAGIC | length (u32) | crc32 (u32) | body, where body is
sequence (u64) | collected_at in ns (u64) | serialized pb.Report, all
big-endian. The CRC covers the body, so a record cut short by a crash, or
bytes flipped on disk, fail the check; the decoder then searches forward for
the next MAGIC and carries on, so one bad record never hides the good ones
after it. The decoder never raises on any input: it reports what it skipped.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["HEADER", "MAGIC", "MAX_BODY", "Decoded", "decode", "encode"]

MAGIC = b"DGS1"
_HEADER = struct.Struct(">4sII")
_BODY_PREFIX = struct.Struct(">QQ")
HEADER = _HEADER.size
# Far above any real report; a larger length field is corruption, not data.
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Decoded:
    """One intact record found at offset (its framed size is size bytes)."""

    offset: int
    size: int
    sequence: int
    collected_ns: int
    payload: bytes


def encode(sequence: int, collected_ns: int, payload: bytes) -> bytes:
    """Frame one record."""
    body = _BODY_PREFIX.pack(sequence, max(0, collected_ns)) + payload
    return _HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def _parse_at(data: bytes, offset: int) -> Decoded | None:
    if offset + HEADER > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, offset)
    if magic != MAGIC or length < _BODY_PREFIX.size or length > MAX_BODY:
        return None
    end = offset + HEADER + length
    if end > len(data):
        return None
    body = data[offset + HEADER : end]
    if zlib.crc32(body) != crc:
        return None
    sequence, collected_ns = _BODY_PREFIX.unpack_from(body)
    return Decoded(offset, HEADER + length, sequence, collected_ns, body[_BODY_PREFIX.size :])


def decode(data: bytes) -> Iterator[Decoded | tuple[int, int]]:
    """Yield each intact record in order, and (offset, length) for each skipped stretch."""
    offset = 0
    while offset < len(data):
        record = _parse_at(data, offset)
        if record is not None:
            yield record
            offset += record.size
            continue
        # Resynchronise: the next place a record could start is the next MAGIC.
        start = offset
        while True:
            offset = data.find(MAGIC, offset + 1)
            if offset < 0:
                offset = len(data)
                break
            if _parse_at(data, offset) is not None:
                break
        yield (start, offset - start)
