"""The renewer's certificate dates, read from DER without `cryptography`.

They must agree with `cryptography` on every certificate we make (both
X.509 time encodings), come from the leaf of a stored credential bundle,
and refuse anything else with CertificateError, never another exception.
"""

from __future__ import annotations

import base64
import contextlib
import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.agent.trust.credentials import RENEW_AT, AgentTlsFiles, renewal_due
from dcguard.common.pem import CertificateError
from dcguard.common.validity import Validity, certificate_validity
from tests.trust_support import issue, self_signed_ca

UTC = datetime.timezone.utc
CA_KEY, CA_CERT = self_signed_ca("validity-test-ca")
CA_PEM = CA_CERT.public_bytes(serialization.Encoding.PEM)
_, LEAF_PEM = issue(CA_KEY, CA_CERT, "db01")


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def _der(tag: int, contents: bytes) -> bytes:
    assert len(contents) < 128
    return bytes([tag, len(contents)]) + contents


# Before 2050 X.509 writes UTCTime, from 2050 GeneralizedTime (RFC 5280 §4.1.2.5).
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (
            datetime.datetime(2026, 11, 23, 8, 30, 5, tzinfo=UTC),
            datetime.datetime(2027, 2, 21, 8, 30, 5, tzinfo=UTC),
        ),
        (
            datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
        ),
        (datetime.datetime(2049, 6, 1, tzinfo=UTC), datetime.datetime(2050, 1, 1, tzinfo=UTC)),
        (
            datetime.datetime(2100, 2, 28, 1, 2, 3, tzinfo=UTC),
            datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        ),
    ],
)
def test_dates_agree_with_cryptography(start, end):
    from dcguard.common.pki import load_certificate

    _, cert_pem = issue(CA_KEY, CA_CERT, "db01", not_before=start, not_after=end)
    cert = load_certificate(cert_pem)
    assert certificate_validity(cert_pem) == Validity(
        cert.not_valid_before_utc, cert.not_valid_after_utc
    )
    assert certificate_validity(cert_pem) == Validity(start, end)


def test_the_stored_bundle_gives_the_leaf_dates_and_the_renewal_point(tmp_path):
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    end = start + datetime.timedelta(days=90)
    key_pem, cert_pem = issue(CA_KEY, CA_CERT, "db01", not_before=start, not_after=end)
    files = AgentTlsFiles(tmp_path)
    # A leaf followed by its CA, as a chain would be: the leaf's dates count.
    files.store(key_pem, cert_pem + CA_PEM, CA_PEM)
    validity = files.validity()
    assert validity == Validity(start, end)
    assert renewal_due(validity) == start + datetime.timedelta(days=90 * RENEW_AT)
    assert renewal_due(validity) == start + datetime.timedelta(days=60)


def test_a_certificate_without_the_optional_version_field():
    # A v1 TBSCertificate starts at the serial number.
    validity = _der(0x30, _der(0x17, b"260101000000Z") + _der(0x18, b"20500101000000Z"))
    tbs = _der(0x30, _der(0x02, b"\x01") + _der(0x30, b"") + _der(0x30, b"") + validity)
    pem = _pem(_der(0x30, tbs))
    assert certificate_validity(pem) == Validity(
        datetime.datetime(2026, 1, 1, tzinfo=UTC), datetime.datetime(2050, 1, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n",
        _pem(_der(0x30, _der(0x30, _der(0x02, b"\x01")))),  # stops early
        _pem(
            _der(
                0x30,
                _der(
                    0x30,
                    _der(0x02, b"\x01")
                    + _der(0x30, b"")
                    + _der(0x30, b"")
                    + _der(0x30, _der(0x17, b"261301000000Z") * 2),
                ),
            )
        ),  # month 13
        _pem(
            _der(
                0x30,
                _der(
                    0x30,
                    _der(0x02, b"\x01")
                    + _der(0x30, b"")
                    + _der(0x30, b"")
                    + _der(0x30, _der(0x17, b"270101000000Z") + _der(0x17, b"260101000000Z")),
                ),
            )
        ),  # ends first
        _pem(b"\x30\x84\xff\xff\xff\xff"),  # huge length
    ],
)
def test_what_is_not_a_certificate_is_one_error(pem):
    with pytest.raises(CertificateError):
        certificate_validity(pem)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_der_is_refused_not_crashed_on(data):
    with contextlib.suppress(CertificateError):
        certificate_validity(_pem(data))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_certificates_are_refused_or_read(data):
    der = bytearray(base64.b64decode(b"".join(LEAF_PEM.splitlines()[1:-1])))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(der) - 1))
        der[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(der)))
    try:
        validity = certificate_validity(_pem(bytes(der[:cut])))
    except CertificateError:
        return
    assert validity.not_before <= validity.not_after
