"""The agent's key pair and certificate request, made on this machine for enroll and renew.

The key never leaves the server: only the CSR goes to the collector.
Imported only by those two paths, since it loads `cryptography`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["make_key_and_csr"]


def make_key_and_csr(host: str) -> tuple[bytes, bytes]:
    """A fresh EC P-256 key (PEM) and a CSR for it; the key stays on this machine."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, host)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)
