"""The enrollment registry: one-time tokens and the certificates issued to agents.

Tokens are stored only as SHA-256 hashes, so a copy of the database enrolls
nobody. Every issued certificate is recorded by serial, which is what
`agents revoke` marks and what every authenticated call checks: a
revocation written by the CLI is seen on the server's next call, without a
restart (both use the same SQLite file; WAL lets them work side by side).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dcguard.collector.auth import CertificateStatus
from dcguard.collector.store import Migration

__all__ = ["ENROLLMENT_SCHEMA", "EnrollmentRegistry", "TokenError", "hash_token", "new_token"]

ENROLLMENT_SCHEMA: Migration = ("enrollment-v1", (
    """
    CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    )
    """,
    """
    CREATE TABLE agent_certificates (
        serial TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        issued_at REAL NOT NULL,
        not_after REAL NOT NULL,
        revoked_at REAL
    )
    """,
    "CREATE INDEX agent_certificates_host ON agent_certificates (host)",
))

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
    """Tokens and certificates, on a connection of its own to the collector database."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open the database (the Store has created it and applied ENROLLMENT_SCHEMA)."""
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("enrollment registry is not open")
        return self._db

    def create_token(self, host: str, department: str, ttl: float,
                     now: float | None = None) -> str:
        """Make a token for host/department valid for ttl seconds; only its hash is kept."""
        token = new_token()
        created = time.time() if now is None else now
        with self._lock:
            self._conn().execute(
                "INSERT INTO enrollment_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                (hash_token(token), host, department, created, created + ttl))
        return token

    def consume_token(self, token: str, host: str, department: str,
                      now: float | None = None) -> TokenGrant:
        """Spend a token once: it must exist, be unused, unexpired and name this host."""
        moment = time.time() if now is None else now
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT host, department, expires_at, used_at FROM enrollment_tokens "
                    "WHERE token_hash = ?", (hash_token(token),)).fetchone()
                if row is None:
                    raise TokenError("invalid_token", "unknown enrollment token")
                token_host, token_department, expires_at, used_at = row
                if used_at is not None:
                    raise TokenError("token_used", "this enrollment token was already used")
                if moment > expires_at:
                    raise TokenError("token_expired", "this enrollment token has expired")
                if (host, department) != (token_host, token_department):
                    raise TokenError(
                        "identity_mismatch",
                        f"this token is for host {token_host!r} in {token_department!r}, "
                        f"not {host!r} in {department!r}")
                db.execute("UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ?",
                           (moment, hash_token(token)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return TokenGrant(host=token_host, department=token_department)

    def record_certificate(self, serial: int, host: str, department: str,
                           not_after: float) -> None:
        with self._lock:
            self._conn().execute(
                "INSERT INTO agent_certificates VALUES (?, ?, ?, ?, ?, NULL)",
                (format(serial, "x"), host, department, time.time(), not_after))

    def certificate_status(self, serial: int) -> CertificateStatus:
        """Whether the registry issued this certificate ("unknown" if not) and revoked it."""
        with self._lock:
            row = self._conn().execute(
                "SELECT revoked_at FROM agent_certificates WHERE serial = ?",
                (format(serial, "x"),)).fetchone()
        if row is None:
            return "unknown"
        return "valid" if row[0] is None else "revoked"

    def revoke_host(self, host: str, now: float | None = None) -> int:
        """Revoke every certificate of host; return how many were still valid."""
        moment = time.time() if now is None else now
        with self._lock:
            cursor = self._conn().execute(
                "UPDATE agent_certificates SET revoked_at = ? "
                "WHERE host = ? AND revoked_at IS NULL", (moment, host))
        return cursor.rowcount

    def known_host(self, host: str) -> bool:
        with self._lock:
            row = self._conn().execute(
                "SELECT 1 FROM agent_certificates WHERE host = ? LIMIT 1", (host,)).fetchone()
        return row is not None
