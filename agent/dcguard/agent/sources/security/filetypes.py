"""What a file's name says its content should look like, and whether its content agrees.

Two judgements, both on a sample (the first block and one middle block),
never the whole file:
- a type with a known header (PDF, ZIP/Office, JPEG, PNG, gzip, ...) whose
  header is gone and whose content is high-entropy has been overwritten by
  something else, typically ciphertext;
- a type that is text (txt, csv, sql, html, ...) whose content is
  high-entropy is no longer text.
Compressed types with their own header (JPEG, ZIP, gzip) are high-entropy by
nature: copying photos or archives is quiet because their header matches.
Files whose name says nothing (no extension, or an unknown one: database
pages, WAL segments) are never judged by content.
"""

from __future__ import annotations

import math
import os
import posixpath
import stat
from collections import Counter

__all__ = [
    "BLOCK",
    "claimed_type",
    "content_sign",
    "entropy",
    "extension",
    "is_known_type",
    "sample",
]

BLOCK = 4096
# Below this many sampled bytes even random data cannot show a high entropy.
MIN_SAMPLE = 512

_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
MAGIC: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF",),
    "zip": _ZIP,
    "docx": _ZIP,
    "xlsx": _ZIP,
    "pptx": _ZIP,
    "odt": _ZIP,
    "ods": _ZIP,
    "odp": _ZIP,
    "jar": _ZIP,
    "epub": _ZIP,
    "doc": _OLE,
    "xls": _OLE,
    "ppt": _OLE,
    "msg": _OLE,
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "gif": (b"GIF87a", b"GIF89a"),
    "tif": (b"II*\x00", b"MM\x00*"),
    "tiff": (b"II*\x00", b"MM\x00*"),
    "gz": (b"\x1f\x8b",),
    "tgz": (b"\x1f\x8b",),
    "bz2": (b"BZh",),
    "xz": (b"\xfd7zXZ\x00",),
    "zst": (b"\x28\xb5\x2f\xfd",),
    "7z": (b"7z\xbc\xaf\x27\x1c",),
    "rar": (b"Rar!\x1a\x07",),
    "sqlite": (b"SQLite format 3\x00",),
    "db": (b"SQLite format 3\x00",),
    "rtf": (b"{\\rtf",),
}
_FTYP = frozenset(("mp4", "mov", "m4a", "heic"))  # "ftyp" at offset 4
TEXT_TYPES = frozenset(
    (
        "txt",
        "csv",
        "tsv",
        "log",
        "sql",
        "xml",
        "html",
        "htm",
        "json",
        "md",
        "conf",
        "cfg",
        "ini",
        "yaml",
        "yml",
        "php",
        "js",
        "css",
        "py",
        "sh",
        "svg",
        "eml",
        "tex",
    )
)


def extension(name: str) -> str:
    """The lower-case last extension of a file name ("" if none; a leading dot is not one)."""
    base = posixpath.basename(name)
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and stem else ""


def is_known_type(ext: str) -> bool:
    """True if the extension names a type whose content we know how to judge."""
    return ext in MAGIC or ext in TEXT_TYPES or ext in _FTYP


def claimed_type(name: str) -> str:
    """The type the name claims: its extension, or the one before an unknown appended one.

    "report.docx.locked" claims "docx": ransomware appends its own extension.
    """
    ext = extension(name)
    if is_known_type(ext):
        return ext
    base = posixpath.basename(name)
    inner = extension(base[: -(len(ext) + 1)]) if ext else ""
    return inner if is_known_type(inner) else ""


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (0-8)."""
    if not data:
        return 0.0
    total = len(data)
    return -sum(n / total * math.log2(n / total) for n in Counter(data).values())


def sample(path: str, max_file_bytes: int) -> tuple[bytes, bytes, int] | None:
    """(first block, middle block, size) of a regular file, or None (gone, too big, not a file).

    O_NOFOLLOW: a symlink planted in a share is never read through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_file_bytes:
            return None
        head = os.pread(fd, BLOCK, 0)
        middle = b""
        if st.st_size > 2 * BLOCK:
            middle = os.pread(fd, BLOCK, (st.st_size // 2) & ~(BLOCK - 1))
        return head, middle, st.st_size
    except OSError:
        return None
    finally:
        os.close(fd)


def _header_matches(ext: str, head: bytes) -> bool:
    if ext in _FTYP:
        return head[4:8] == b"ftyp"
    return any(head.startswith(magic) for magic in MAGIC[ext])


def content_sign(ext: str, head: bytes, middle: bytes, entropy_bits: float) -> str:
    """ "header_mismatch", "entropy_burst" (high entropy where the type says text), or ""."""
    if not ext or len(head) + len(middle) < MIN_SAMPLE:
        return ""
    bits = max(entropy(head), entropy(middle)) if middle else entropy(head)
    if bits < entropy_bits:
        return ""
    if ext in TEXT_TYPES:
        return "entropy_burst"
    if not _header_matches(ext, head):
        return "header_mismatch"
    return ""
