"""The agent's TLS credentials: pinning the collector's CA, loading and renewing certificates.

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

import datetime
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dcguard.common.config import ConfigError, parse_listen_address
from dcguard.common.pki import (
    CertificateError,
    common_name,
    fingerprint,
    load_certificate,
    split_bundle,
    verify_issued,
    write_private,
)

__all__ = [
    "AgentTlsFiles", "PinError", "Renewer", "certificates_from_tls12", "fetch_server_chain",
    "load_credentials", "make_key_and_csr", "pinned_ca",
]

log = logging.getLogger(__name__)

# Renew once this share of the certificate's lifetime has passed.
RENEW_AT = 2 / 3


class PinError(Exception):
    """The collector's certificate chain does not lead to the pinned CA."""


@dataclass(frozen=True)
class AgentTlsFiles:
    """The agent's credentials and CA under state_dir/tls.

    Key and certificate share one file (agent.pem, 0600: certificate, then
    key), replaced in one atomic rename: a crash during renewal leaves the
    old pair or the new pair, never a key with another key's certificate.
    """

    state_dir: Path

    @property
    def directory(self) -> Path:
        return self.state_dir / "tls"

    @property
    def credentials(self) -> Path:
        return self.directory / "agent.pem"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def store(self, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> None:
        """Write the CA, then the certificate and key together."""
        write_private(self.ca, ca_pem, 0o644)
        write_private(self.credentials, cert_pem + key_pem)

    def load(self) -> tuple[bytes, bytes]:
        """(key PEM, certificate PEM); CertificateError if the file is not such a pair."""
        try:
            return split_bundle(self.credentials.read_bytes())
        except CertificateError as exc:
            raise CertificateError(f"{self.credentials} {exc}") from None

    def certificate(self) -> x509.Certificate:
        return load_certificate(self.load()[1])


def make_key_and_csr(host: str) -> tuple[bytes, bytes]:
    """A fresh EC P-256 key (PEM) and a CSR for it; the key stays on this machine."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, host)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


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
        kind, length = data[offset], int.from_bytes(data[offset + 3:offset + 5], "big")
        if kind != 22 or offset + 5 + length > len(data):
            break
        handshake += data[offset + 5:offset + 5 + length]
        offset += 5 + length
    position = 0
    while position + 4 <= len(handshake):
        kind = handshake[position]
        length = int.from_bytes(handshake[position + 1:position + 4], "big")
        body = handshake[position + 4:position + 4 + length]
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
        length = int.from_bytes(body[position:position + 3], "big")
        if position + 3 + length > end:
            return []
        certs.append(body[position + 3:position + 3 + length])
        position += 3 + length
    return certs


def pinned_ca(address: str, pin: str, timeout: float) -> bytes:
    """The collector's CA as PEM, if its chain holds a CA with this fingerprint that issued it."""
    try:
        chain = [x509.load_der_x509_certificate(der) for der in
                 fetch_server_chain(address, timeout)]
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
            "(a wrong fingerprint, a different collector, or someone in between)")
    ca = matches[0]
    try:
        verify_issued(chain[0], ca)
    except CertificateError as exc:
        raise PinError(f"collector {address}: its certificate does not lead to the pinned "
                       f"CA: {exc}") from None
    return ca.public_bytes(serialization.Encoding.PEM)


def load_credentials(state_dir: Path, path: Path) -> grpc.ChannelCredentials:
    """mTLS credentials from state_dir; a ConfigError naming the fix if the agent never enrolled."""
    files = AgentTlsFiles(state_dir)
    try:
        key_pem, cert_pem = files.load()
        return grpc.ssl_channel_credentials(
            root_certificates=files.ca.read_bytes(), private_key=key_pem,
            certificate_chain=cert_pem)
    except FileNotFoundError:
        raise ConfigError(
            f"config {path}: collector.insecure is false, and no TLS credentials are in "
            f"{files.directory}: enroll the agent first (dcguard-agent enroll)") from None
    except (OSError, CertificateError) as exc:
        raise ConfigError(f"config {path}: the TLS credentials in {files.directory} are "
                          f"unusable ({exc}): enroll the agent again") from None


def renewal_due(cert: x509.Certificate, now: datetime.datetime) -> datetime.datetime:
    """When cert should be renewed: after RENEW_AT of its lifetime."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * RENEW_AT


class Renewer(threading.Thread):
    """Renews the agent's certificate before it expires, over mTLS, in the background.

    On success the new files are written and on_renewed gets the new
    credentials (the sender switches its channel). Failures are retried
    with the interval; they are logged once per episode.
    """

    def __init__(self, state_dir: Path, addresses: tuple[str, ...], timeout: float,
                 on_renewed: Callable[[grpc.ChannelCredentials], None],
                 stop: threading.Event, host: str) -> None:
        super().__init__(name="cert-renewer", daemon=True)
        self._files = AgentTlsFiles(state_dir)
        self._state_dir = state_dir
        self._addresses = addresses
        self._timeout = timeout
        self._on_renewed = on_renewed
        self._stop = stop
        self._host = host

    def run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                cert = self._files.certificate()
            except (OSError, CertificateError) as exc:
                log.error("cannot read the agent certificate: %s", exc)
                self._stop.wait(60)
                continue
            now = datetime.datetime.now(datetime.timezone.utc)
            due = renewal_due(cert, now)
            lifetime = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
            # Check often enough for short lifetimes, at most every 10 minutes.
            pause = max(0.2, min(600.0, lifetime / 50))
            if now < due:
                self._stop.wait(min(pause, (due - now).total_seconds()))
                continue
            try:
                self.renew_once()
            except (grpc.RpcError, CertificateError, OSError) as exc:
                if not failing:
                    expired = now >= cert.not_valid_after_utc
                    log.error("certificate renewal failing (%s %s)%s: %s",
                              "expired" if expired else "expires",
                              cert.not_valid_after_utc.isoformat(),
                              "; enroll the agent again with a new token" if expired else "",
                              _describe(exc))
                failing = True
                self._stop.wait(pause)
                continue
            if failing:
                log.info("certificate renewal recovered")
            failing = False

    def renew_once(self) -> None:
        """Ask the collector for a new certificate for a new key; store it and hand it on."""
        from dcguard.v1 import collector_pb2 as pb
        from dcguard.v1 import collector_pb2_grpc as pb_grpc

        credentials = load_credentials(self._state_dir, self._files.credentials)
        key_pem, csr_pem = make_key_and_csr(self._host)
        last: Exception = OSError("no collector address")
        for address in self._addresses:
            with grpc.secure_channel(address, credentials) as channel:
                try:
                    answer = pb_grpc.CollectorStub(channel).Renew(
                        pb.RenewRequest(csr_pem=csr_pem), timeout=self._timeout)
                except grpc.RpcError as exc:
                    last = exc
                    continue
            ca = load_certificate(self._files.ca.read_bytes())
            renewed = load_certificate(answer.certificate_pem)
            verify_issued(renewed, ca, client=True)
            if common_name(renewed) != self._host:
                raise CertificateError(f"the collector renewed a certificate for "
                                       f"{common_name(renewed)!r}, not {self._host!r}")
            self._files.store(key_pem, answer.certificate_pem, self._files.ca.read_bytes())
            log.info("certificate renewed via %s", address)
            self._on_renewed(load_credentials(self._state_dir, self._files.credentials))
            return
        raise last


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)
