"""Enrollment's first step: fetch the collector's CA and accept it only by its pinned hash.

Pinning, as kubeadm's `--discovery-token-ca-cert-hash` does it: fetch the
CA from the collector without trusting the connection, accept it only if
its SHA-256 matches the fingerprint the operator typed, then make the real
connection (gRPC) with that CA as its only root. A man in the middle can
show us any chain, but cannot show a certificate with the pinned hash
whose key signed a server certificate for the address we dial: gRPC's own
verification against the pinned CA refuses him.

The collector presents its chain as [server, CA]. The unverified chain is
read with `ssl`: the public `get_unverified_chain()` on Python 3.13+, the
same method on the internal `_sslobj` on 3.10-3.12, and on 3.9 (which has
neither) from the TLS 1.2 Certificate message, which travels unencrypted.
Whatever the path, only the pin decides trust, never the fetch.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dcguard.common.config import parse_listen_address
from dcguard.common.pki import CertificateError, fingerprint, verify_issued

__all__ = ["PinError", "certificates_from_tls12", "fetch_server_chain", "pinned_ca"]


class PinError(Exception):
    """The collector's certificate chain does not lead to the pinned CA."""


def _client_context(tls12_only: bool = False) -> ssl.SSLContext:
    # Verification is off on purpose: this connection only fetches candidate
    # certificates, and nothing is sent on it. Trust comes from the pin.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])  # gRPC servers refuse TLS without it
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def fetch_server_chain(address: str, timeout: float) -> list[bytes]:
    """The DER certificates the server at host:port presents, unverified, leaf first."""
    host, port = parse_listen_address(address)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        if hasattr(ssl.SSLSocket, "get_unverified_chain"):  # Python 3.13+
            with _client_context().wrap_socket(raw, server_hostname=host) as tls:
                return [bytes(c) for c in tls.get_unverified_chain()]  # type: ignore[attr-defined, unused-ignore]
        with _client_context().wrap_socket(raw, server_hostname=host) as tls:
            inner: Any = getattr(tls, "_sslobj", None)
            if inner is not None and hasattr(inner, "get_unverified_chain"):  # 3.10-3.12
                chain = inner.get_unverified_chain() or []
                return [ssl.PEM_cert_to_DER_cert(c.public_bytes()) for c in chain]
    return _fetch_chain_tls12(address, timeout)


def _fetch_chain_tls12(address: str, timeout: float) -> list[bytes]:
    """Python 3.9: run a TLS 1.2 handshake through memory buffers and read the raw bytes."""
    host, port = parse_listen_address(address)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _client_context(tls12_only=True).wrap_bio(incoming, outgoing, server_hostname=host)
    received = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as raw:
        for _ in range(64):  # a handshake is a few round trips; never loop forever
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    raw.sendall(pending)
                data = raw.recv(65536)
                if not data:
                    break
                received += data
                incoming.write(data)
                if certificates_from_tls12(bytes(received)):
                    break
    certs = certificates_from_tls12(bytes(received))
    if not certs:
        raise PinError(f"collector {address} sent no certificate in a TLS 1.2 handshake")
    return certs


def certificates_from_tls12(data: bytes) -> list[bytes]:
    """The certificate list of the first TLS 1.2 Certificate message in raw server bytes.

    Handshake records are joined (a message may span records) up to the
    first non-handshake record; [] if the message is not complete yet.
    Bounds are checked at every step: these bytes come from the network.
    """
    handshake = bytearray()
    offset = 0
    while offset + 5 <= len(data):
        kind, length = data[offset], int.from_bytes(data[offset + 3 : offset + 5], "big")
        if kind != 22 or offset + 5 + length > len(data):
            break
        handshake += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
    position = 0
    while position + 4 <= len(handshake):
        kind = handshake[position]
        length = int.from_bytes(handshake[position + 1 : position + 4], "big")
        body = handshake[position + 4 : position + 4 + length]
        if len(body) < length:
            return []
        if kind == 11:
            return _certificate_list(bytes(body))
        position += 4 + length
    return []


def _certificate_list(body: bytes) -> list[bytes]:
    if len(body) < 3:
        return []
    total = int.from_bytes(body[:3], "big")
    certs: list[bytes] = []
    position = 3
    end = min(3 + total, len(body))
    while position + 3 <= end:
        length = int.from_bytes(body[position : position + 3], "big")
        if position + 3 + length > end:
            return []
        certs.append(body[position + 3 : position + 3 + length])
        position += 3 + length
    return certs


def pinned_ca(address: str, pin: str, timeout: float) -> bytes:
    """The collector's CA as PEM, if its chain holds a CA with this fingerprint that issued it."""
    try:
        chain = [
            x509.load_der_x509_certificate(der) for der in fetch_server_chain(address, timeout)
        ]
    except (OSError, ssl.SSLError) as exc:
        raise PinError(f"cannot reach collector {address} over TLS: {exc}") from None
    except ValueError as exc:
        raise PinError(f"collector {address} sent an unreadable certificate: {exc}") from None
    if not chain:
        raise PinError(f"collector {address} presented no certificate")
    matches = [cert for cert in chain if fingerprint(cert) == pin]
    if not matches:
        raise PinError(
            f"collector {address} does not present the CA {pin}: refusing to enroll "
            "(a wrong fingerprint, a different collector, or someone in between)"
        )
    ca = matches[0]
    try:
        verify_issued(chain[0], ca)
    except CertificateError as exc:
        raise PinError(
            f"collector {address}: its certificate does not lead to the pinned CA: {exc}"
        ) from None
    return ca.public_bytes(serialization.Encoding.PEM)
