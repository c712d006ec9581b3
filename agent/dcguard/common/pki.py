"""X.509 helpers shared by agent and collector: fingerprints and chain checks.

grpc-python verifies certificates only as far as its TLS stack is
configured, and offers no hooks; what it cannot be asked to check (a pinned
CA, an offered client certificate) is checked here with `cryptography`.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateError", "common_name", "fingerprint", "load_certificate",
    "load_certificates", "parse_fingerprint", "split_bundle", "unit_name", "verify_issued",
    "write_private",
]

_FINGERPRINT = re.compile(r"^sha256:([0-9a-f]{64})$")


class CertificateError(Exception):
    """A certificate is unreadable, not ours, expired or otherwise unacceptable."""


def fingerprint(cert: x509.Certificate) -> str:
    """`sha256:<hex>` over the DER certificate (what `ca init` and `token create` print)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str) -> str:
    """Normalise a fingerprint as typed (case, colons); ValueError if it is not one."""
    cleaned = text.strip().lower()
    if cleaned.startswith("sha256:"):
        cleaned = "sha256:" + cleaned[len("sha256:"):].replace(":", "")
    if not _FINGERPRINT.match(cleaned):
        raise ValueError("must be 'sha256:' followed by 64 hex digits "
                         "(as printed by dcguard-collector token create)")
    return cleaned


def load_certificate(data: bytes) -> x509.Certificate:
    """One PEM certificate; CertificateError if data is not one."""
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every PEM certificate in data (a chain file), in order."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate chain: {exc}") from None


def _name_attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if len(values) == 1 else ""


def common_name(cert: x509.Certificate) -> str:
    """The subject CN: the host name in an agent certificate."""
    return _name_attribute(cert, NameOID.COMMON_NAME)


def unit_name(cert: x509.Certificate) -> str:
    """The subject OU: the department in an agent certificate."""
    return _name_attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)


def verify_issued(cert: x509.Certificate, ca: x509.Certificate, *,
                  now: datetime.datetime | None = None, client: bool = False) -> None:
    """Raise CertificateError unless ca signed cert and cert is valid now.

    With client=True the certificate must also be meant for TLS clients, so a
    server certificate cannot be replayed as an agent's.
    """
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not issued by this CA: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - InvalidSignature and backend errors
        raise CertificateError(f"not issued by this CA ({type(exc).__name__})") from None
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    if moment < cert.not_valid_before_utc:
        raise CertificateError("certificate is not valid yet")
    if moment > cert.not_valid_after_utc:
        raise CertificateError("certificate has expired")
    if client:
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            raise CertificateError("certificate is not for TLS clients") from None
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            raise CertificateError("certificate is not for TLS clients")


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


_KEY_MARKER = b"-----BEGIN PRIVATE KEY-----"


def split_bundle(data: bytes) -> tuple[bytes, bytes]:
    """A bundle file (certificates, then a PKCS#8 key) → (key PEM, certificates PEM).

    Key and certificate live in one file so that replacing them is one
    atomic rename: never a key paired with another key's certificate.
    """
    marker = data.find(_KEY_MARKER)
    if marker <= 0 or b"-----BEGIN CERTIFICATE-----" not in data[:marker]:
        raise CertificateError("holds no certificate followed by a private key")
    return data[marker:], data[:marker]
