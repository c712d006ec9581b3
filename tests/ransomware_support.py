"""Real files for the ransomware watcher's tests and bench: documents, photos, archives, PDFs.

Every file is a valid instance of its type, made here with the standard
library (no image library on a bare Debian): text and CSV, a .docx (a ZIP
with Word's parts), a PDF holding a random-pixel image (high entropy, as a
scan is), a baseline JPEG carrying random bytes in an APP segment (as a
camera's embedded preview does), and a deflated ZIP of random data.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

__all__ = ["docx_bytes", "jpeg_bytes", "pdf_bytes", "populate", "text_bytes", "zip_bytes"]

_TEXT = (
    "quyet dinh so cong van ngay thang nam ho so dat dai nguoi dan phuong xa bao cao tong hop "
    "ngan sach du an the report of the department on land records and budget"
)
_WORDS = _TEXT.split()


def text_bytes(seed: int, size: int = 3000) -> bytes:
    """Readable text (a few hundred words)."""
    words = [_WORDS[(seed * 7 + i * 13) % len(_WORDS)] for i in range(size // 5)]
    return (" ".join(words) + "\n").encode()[:size]


def docx_bytes(seed: int) -> bytes:
    """A Word document with text and an embedded photo, a few kilobytes like real ones."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        body = text_bytes(seed, 6000).decode()
        archive.writestr("word/document.xml", f"<w:document><w:body>{body}</w:body></w:document>")
        archive.writestr("word/media/image1.jpeg", jpeg_bytes(6000), zipfile.ZIP_STORED)
    return buffer.getvalue()


def zip_bytes(size: int = 40_000) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.bin", os.urandom(size))
        archive.writestr("readme.txt", "an archive\n")
    return buffer.getvalue()


def pdf_bytes(side: int = 96) -> bytes:
    """A one-page PDF showing a side x side image of random RGB pixels."""
    pixels = zlib.compress(os.urandom(side * side * 3))
    content = b"q 200 0 0 200 0 0 cm /Im0 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] "
        b"/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream"
        % (side, side, len(pixels), pixels),
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def jpeg_bytes(preview_bytes: int = 30_000) -> bytes:
    """A baseline 8x8 grey JPEG with preview_bytes of random data in APP15 segments."""
    out = b"\xff\xd8"
    out += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    left = preview_bytes
    while left > 0:
        chunk = min(left, 65000)
        out += _segment(0xEF, os.urandom(chunk))
        left -= chunk
    out += _segment(0xDB, b"\x00" + b"\x01" * 64)  # quantisation table 0: all ones
    out += _segment(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00")  # 8x8, one component
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"  # one code of length 1, for symbol 0
    out += _segment(0xC4, b"\x00" + one_code)  # DC table 0: category 0
    out += _segment(0xC4, b"\x10" + one_code)  # AC table 0: end of block
    out += _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    out += b"\x3f"  # DC "0" (no difference), AC "0" (EOB), padded with ones
    return out + b"\xff\xd9"


def populate(root: Path, directories: int = 6, per_directory: int = 10) -> list[Path]:
    """A department share: directories of text, CSV, Word and PDF files."""
    made: list[Path] = []
    for d in range(directories):
        directory = root / f"phong-{d}"
        directory.mkdir(parents=True, exist_ok=True)
        for i in range(per_directory):
            seed = d * per_directory + i
            kind = i % 4
            if kind == 0:
                path, data = directory / f"cong-van-{i}.txt", text_bytes(seed)
            elif kind == 1:
                path, data = directory / f"bang-{i}.csv", text_bytes(seed).replace(b" ", b",")
            elif kind == 2:
                path, data = directory / f"quyet-dinh-{i}.docx", docx_bytes(seed)
            else:
                path, data = directory / f"scan-{i}.pdf", pdf_bytes(48)
            path.write_bytes(data)
            made.append(path)
    return made
