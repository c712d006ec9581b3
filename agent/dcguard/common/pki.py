"""X.509 helpers shared by agent and collector: fingerprints and chain checks.

grpc-python verifies certificates only as far as its TLS stack is
configured, and offers no hooks; what it cannot be asked to check (a pinned
CA, an offered client certificate) is checked here with `cryptography`.

Importing this module loads `cryptography`, so the running agent does not:
it imports this only to enroll and renew. What needs no X.509 library lives
in dcguard.common.pem and is re-exported here.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dcguard.common.pem import CertificateError, parse_fingerprint, split_bundle, write_private

__all__ = [
    "CertificateError",
    "check_current",
    "common_name",
    "fingerprint",
    "load_certificate",
    "load_certificates",
    "parse_fingerprint",
    "split_bundle",
    "unit_name",
    "verify_issued",
    "write_private",
]


def fingerprint(cert: x509.Certificate) -> str:
    """`sha256:<hex>` over the DER certificate (what `ca init` and `token create` print)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


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


def check_current(
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    now: datetime.datetime | None = None,
) -> None:
    """Raise CertificateError unless now (default: the clock) lies in the validity period."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    if moment < not_before:
        raise CertificateError("certificate is not valid yet")
    if moment > not_after:
        raise CertificateError("certificate has expired")


def verify_issued(
    cert: x509.Certificate,
    ca: x509.Certificate,
    *,
    now: datetime.datetime | None = None,
    client: bool = False,
) -> None:
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
    check_current(cert.not_valid_before_utc, cert.not_valid_after_utc, now)
    if client:
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            raise CertificateError("certificate is not for TLS clients") from None
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            raise CertificateError("certificate is not for TLS clients")
