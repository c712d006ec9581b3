"""Credential files and fingerprints, handled without `cryptography`.

What the long-running agent does with its credentials (split the bundle it
hands to gRPC, write files atomically, normalise a typed fingerprint) needs
no X.509 library; keeping it here keeps `cryptography` (about 10 MiB of
RSS) out of `dcguard-agent run`. dcguard.common.pki, which does need it,
re-exports these for the collector.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dcguard.common.i18n import tr

__all__ = ["CertificateError", "parse_fingerprint", "split_bundle", "write_private"]

_FINGERPRINT = re.compile(r"^sha256:([0-9a-f]{64})$")
_KEY_MARKER = b"-----BEGIN PRIVATE KEY-----"


class CertificateError(Exception):
    """A certificate is unreadable, not ours, expired or otherwise unacceptable."""


def parse_fingerprint(text: str) -> str:
    """Normalise a fingerprint as typed (case, colons); ValueError if it is not one."""
    cleaned = text.strip().lower()
    if cleaned.startswith("sha256:"):
        cleaned = "sha256:" + cleaned[len("sha256:") :].replace(":", "")
    if not _FINGERPRINT.match(cleaned):
        raise ValueError(
            tr(
                "must be 'sha256:' followed by 64 hex digits (as printed by "
                "dcguard-collector token create)"
            )
        )
    return cleaned


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace path atomically with a file created with mode (0600: keys), never wider.

    The file is created with its final mode, so a key is never readable by
    others even for a moment; fsync'd, then renamed over the old one.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def split_bundle(data: bytes) -> tuple[bytes, bytes]:
    """A bundle file (certificates, then a PKCS#8 key) → (key PEM, certificates PEM).

    Key and certificate live in one file so that replacing them is one
    atomic rename: never a key paired with another key's certificate.
    """
    marker = data.find(_KEY_MARKER)
    if marker <= 0 or b"-----BEGIN CERTIFICATE-----" not in data[:marker]:
        raise CertificateError("holds no certificate followed by a private key")
    return data[marker:], data[:marker]
