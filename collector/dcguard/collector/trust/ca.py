"""The collector's certificate authority: its files, `ca init`, and issuing agent certificates.

One small private CA per collector: it signs the server certificate agents
dial and the client certificate of every enrolled agent. Agents trust it by
its fingerprint (printed by `ca init` and `token create`), never by a
public PKI. Keys are EC P-256, written 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dcguard.common.i18n import tr
from dcguard.common.pki import (
    CertificateError,
    fingerprint,
    load_certificate,
    split_bundle,
    write_private,
)

__all__ = ["CertificateAuthority", "TlsFiles", "init_ca"]

CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=825)
# Clocks on department servers drift; a certificate valid from "now" on the
# collector would be "not yet valid" on a server a minute behind.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class TlsFiles:
    """Where the collector's TLS material lives (the [tls] dir)."""

    directory: Path

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server(self) -> Path:
        """The server certificate, the CA (agents pin it from this chain), then the key."""
        return self.directory / "server.pem"

    def server_credentials(self) -> tuple[bytes, bytes]:
        """(key PEM, chain PEM) for grpc.ssl_server_credentials."""
        try:
            return split_bundle(self.server.read_bytes())
        except FileNotFoundError:
            raise CertificateError(
                tr(
                    "no server certificate in {directory}: run `dcguard-collector ca init`",
                    directory=self.directory,
                )
            ) from None
        except CertificateError as exc:
            raise CertificateError(f"{self.server} {exc}") from None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def default_server_names() -> tuple[list[str], list[str]]:
    """The names agents are likely to dial when none are given: this host, and loopback."""
    names = ["localhost"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in names:
            names.append(name)
    return names, ["127.0.0.1", "::1"]


def _sans(names: Sequence[str], addresses: Sequence[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    for address in addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            raise ValueError(f"--address {address!r} is not an IP address") from None
    if not sans:
        raise ValueError("the server certificate needs at least one --name or --address")
    return sans


def _write_server(
    files: TlsFiles,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: Sequence[str],
    addresses: Sequence[str],
) -> None:
    """Sign a new server certificate for names/addresses; write it with its key, atomically."""
    sans = _sans(names, addresses)
    now = _now()
    server_key = ec.generate_private_key(ec.SECP256R1())
    first = names[0] if names else addresses[0]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.server, _pem(server_cert) + _pem(ca_cert) + _key_pem(server_key))


def init_ca(
    files: TlsFiles, names: Sequence[str], addresses: Sequence[str], *, force: bool = False
) -> x509.Certificate:
    """Make a new CA and a server certificate for names/addresses; return the CA certificate.

    Refuses to replace an existing CA unless forced: every enrolled agent
    trusts the old one, and would have to enroll again.
    """
    if files.ca_key.exists() and not force:
        raise FileExistsError(
            f"a CA already exists in {files.directory}; replacing it means "
            "every agent must enroll again (use --force to do so)"
        )
    _sans(names, addresses)  # refuse bad flags before anything is written
    now = _now()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"dcguard collector CA {secrets.token_hex(4)}")]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # The key first: a crash midway leaves no CA certificate without its key
    # (and `ca init --force` starts over).
    write_private(files.ca_key, _key_pem(ca_key))
    write_private(files.ca_cert, _pem(ca_cert), 0o644)
    _write_server(files, ca_key, ca_cert, names, addresses)
    return ca_cert


class CertificateAuthority:
    """The loaded CA: signs agent certificates and checks presented ones."""

    def __init__(self, files: TlsFiles) -> None:
        try:
            self.cert = load_certificate(files.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise CertificateError(
                tr(
                    "no CA in {directory} ({file} is missing): run "
                    "`dcguard-collector ca init` first",
                    directory=files.directory,
                    file=exc.filename,
                )
            ) from None
        except ValueError as exc:
            raise CertificateError(
                f"the CA key in {files.directory} is unreadable: {exc}"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{files.ca_key} is not an EC key")
        self._key = key
        self._files = files
        self.pem = _pem(self.cert)
        self.fingerprint = fingerprint(self.cert)

    def reissue_server(self, names: Sequence[str], addresses: Sequence[str]) -> None:
        """A new server certificate (e.g. for a new name agents dial) from the same CA.

        Agents keep their certificates and pin; the collector picks the new
        certificate up when restarted.
        """
        _write_server(self._files, self._key, self.cert, names, addresses)

    def issue(
        self, csr_pem: bytes, host: str, department: str, lifetime: datetime.timedelta
    ) -> x509.Certificate:
        """Sign an agent's CSR. Only its public key is used: the CA decides the subject."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise CertificateError("not a PEM certificate request") from None
        if not csr.is_signature_valid:
            raise CertificateError("the certificate request's signature is invalid")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CertificateError("the certificate request must carry an EC key")
        now = _now()
        # Backdated for clock skew, but by no more than a tenth of a short
        # lifetime, so "renew after 2/3 of the lifetime" keeps its meaning.
        backdate = min(BACKDATE, lifetime / 10)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, host),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, department),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - backdate)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
