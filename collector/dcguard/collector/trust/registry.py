"""The enrollment registry: one-time tokens and the certificates issued to agents.

Tokens are stored only as SHA-256 hashes, so a copy of the database enrolls
nobody. Every issued certificate is recorded by serial, which is what
`agents revoke` marks and what every authenticated call checks: a
revocation written by the CLI is seen on the server's next call, without a
restart (both use the same database, through the store).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from dcguard.collector.identity import CertificateStatus
from dcguard.collector.store import CertificateRecord, Database, RegistryStore, registry_store

__all__ = ["EnrollmentRegistry", "TokenError", "hash_token", "new_token"]

# "dcg1." marks the format; 32 random bytes make guessing hopeless.
TOKEN_PREFIX = "dcg1."  # noqa: S105 - a format marker, not a secret


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenError(Exception):
    """A token that cannot enroll; reason is the counted outcome."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TokenGrant:
    host: str
    department: str


class EnrollmentRegistry:
    """Tokens and certificates, kept by the store on a handle of its own."""

    def __init__(self, path: Database) -> None:
        self._store: RegistryStore = registry_store(path)

    def open(self) -> None:
        """Open the database (the report store has created it and applied the schema)."""
        self._store.open()

    def close(self) -> None:
        self._store.close()

    def create_token(self, host: str, department: str, ttl: float, now: float | None = None) -> str:
        """Make a token for host/department valid for ttl seconds; only its hash is kept."""
        token = new_token()
        created = time.time() if now is None else now
        self._store.add_token(hash_token(token), host, department, created, created + ttl)
        return token

    def consume_token(
        self, token: str, host: str, department: str, now: float | None = None
    ) -> TokenGrant:
        """Spend a token once: it must exist, be unused, unexpired and name this host."""
        moment = time.time() if now is None else now
        row = self._store.token(hash_token(token))
        if row is None:
            raise TokenError("invalid_token", "unknown enrollment token")
        if row.used_at is not None:
            raise TokenError("token_used", "this enrollment token was already used")
        if moment > row.expires_at:
            raise TokenError("token_expired", "this enrollment token has expired")
        if (host, department) != (row.host, row.department):
            raise TokenError(
                "identity_mismatch",
                f"this token is for host {row.host!r} in {row.department!r}, "
                f"not {host!r} in {department!r}",
            )
        # Marked only if still unused: of two enrollments racing, one wins.
        if not self._store.mark_token_used(hash_token(token), moment):
            raise TokenError("token_used", "this enrollment token was already used")
        return TokenGrant(host=row.host, department=row.department)

    def record_certificate(self, serial: int, host: str, department: str, not_after: float) -> None:
        self._store.add_certificate(
            CertificateRecord(
                serial=format(serial, "x"),
                host=host,
                department=department,
                issued_at=time.time(),
                not_after=not_after,
                revoked_at=None,
            )
        )

    def certificate_status(self, serial: int) -> CertificateStatus:
        """Whether the registry issued this certificate ("unknown" if not) and revoked it."""
        cert = self._store.certificate(format(serial, "x"))
        if cert is None:
            return "unknown"
        return "valid" if cert.revoked_at is None else "revoked"

    def revoke_host(self, host: str, now: float | None = None) -> int:
        """Revoke every certificate of host; return how many were still valid."""
        return self._store.revoke_host(host, time.time() if now is None else now)

    def known_host(self, host: str) -> bool:
        return self._store.known_host(host)
