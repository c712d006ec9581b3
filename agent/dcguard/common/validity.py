"""A certificate's validity period, read from its DER without an X.509 library.

The agent's renewer only needs to know when its certificate starts and
ends, every few minutes for months. `cryptography` would answer that at
the cost of about 10 MiB of RSS for the agent's whole life, so the two
dates are read here by walking the few DER elements that lead to them
(RFC 5280 §4.1):

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
        [0] version OPTIONAL, serialNumber INTEGER, signature SEQUENCE,
        issuer SEQUENCE, validity SEQUENCE { notBefore Time, notAfter Time }, ...

Nothing is trusted from it: the signature is not checked (the collector
and gRPC's TLS do that); only the renewal schedule depends on these dates.
Every bound is checked, and anything unexpected is a CertificateError.
"""

from __future__ import annotations

import binascii
import datetime
from dataclasses import dataclass

from dcguard.common.pem import CertificateError

__all__ = ["Validity", "certificate_validity"]

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"

_SEQUENCE = 0x30
_INTEGER = 0x02
_VERSION = 0xA0  # [0] EXPLICIT, constructed
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


@dataclass(frozen=True)
class Validity:
    """When a certificate starts and stops being valid (timezone-aware, UTC)."""

    not_before: datetime.datetime
    not_after: datetime.datetime


def certificate_validity(pem: bytes) -> Validity:
    """The validity of the first PEM certificate in pem (a leaf before its chain)."""
    der = _first_der(pem)
    start, _ = _element(der, 0, _SEQUENCE)  # Certificate
    position, tbs_end = _element(der, start, _SEQUENCE)  # tbsCertificate
    tbs = der[:tbs_end]
    if position < tbs_end and tbs[position] == _VERSION:
        position = _element(tbs, position, _VERSION)[1]
    position = _element(tbs, position, _INTEGER)[1]  # serialNumber
    position = _element(tbs, position, _SEQUENCE)[1]  # signature algorithm
    position = _element(tbs, position, _SEQUENCE)[1]  # issuer
    position, validity_end = _element(tbs, position, _SEQUENCE)
    times = der[:validity_end]
    not_before, position = _time(times, position)
    not_after, _ = _time(times, position)
    if not_after < not_before:
        raise CertificateError("certificate ends before it starts")
    return Validity(not_before, not_after)


def _first_der(pem: bytes) -> bytes:
    begin = pem.find(_BEGIN)
    end = pem.find(_END, begin + len(_BEGIN))
    if begin < 0 or end < 0:
        raise CertificateError("not a PEM certificate")
    try:
        return binascii.a2b_base64(pem[begin + len(_BEGIN) : end])
    except binascii.Error as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None


def _element(data: bytes, offset: int, tag: int) -> tuple[int, int]:
    """(contents start, contents end) of the DER element with this tag at offset."""
    if offset + 2 > len(data) or data[offset] != tag:
        raise CertificateError("not an X.509 certificate (unexpected DER structure)")
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # DER: long form only with 1-4 length bytes here (no certificate is 4 GiB).
        if not 1 <= count <= 4 or offset + count > len(data):
            raise CertificateError("not an X.509 certificate (bad DER length)")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise CertificateError("not an X.509 certificate (truncated)")
    return offset, offset + length


def _time(data: bytes, offset: int) -> tuple[datetime.datetime, int]:
    """An X.509 Time (UTCTime or GeneralizedTime, as RFC 5280 fixes them) and the next offset."""
    tag = data[offset] if offset < len(data) else -1
    if tag not in (_UTC_TIME, _GENERALIZED_TIME):
        raise CertificateError("not an X.509 certificate (validity is not a time)")
    start, end = _element(data, offset, tag)
    text = data[start:end]
    # RFC 5280 §4.1.2.5: YYMMDDHHMMSSZ before 2050, YYYYMMDDHHMMSSZ from 2050.
    digits = 12 if tag == _UTC_TIME else 14
    if len(text) != digits + 1 or text[-1:] != b"Z" or not text[:-1].isdigit():
        raise CertificateError("not an X.509 certificate (malformed validity time)")
    if tag == _UTC_TIME:
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:-1]
    else:
        year, rest = int(text[:4]), text[4:-1]
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    try:
        moment = datetime.datetime(
            year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc
        )
    except ValueError as exc:
        raise CertificateError(f"not an X.509 certificate (validity time: {exc})") from None
    return moment, end
