"""The enrollment registry's rows in PostgreSQL, shared by every collector on the database.

A token is spent by one UPDATE ... WHERE used_at IS NULL: of two
collectors racing on it, PostgreSQL lets one update the row and makes the
other re-check the condition after waiting for it, so exactly one
enrolls. A revocation is a committed row every collector reads on the
agent's next call.
"""

from __future__ import annotations

import threading

from dcguard.collector.store.model import (
    CertificateRecord,
    PostgresDatabase,
    StoreError,
    TokenRecord,
)
from dcguard.collector.store.postgres.connection import Connection, connect, translated

__all__ = ["PostgresRegistry"]


class PostgresRegistry:
    """interface.RegistryStore on a connection of its own (autocommit: each call commits)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._db: Connection | None = None

    def open(self) -> None:
        self._db = connect(self._database)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> Connection:
        if self._db is None:
            raise StoreError("enrollment registry is not open")
        if self._db.closed or self._db.broken:
            self._db = connect(self._database)
        return self._db

    @translated
    def add_token(
        self, token_hash: str, host: str, department: str, created_at: float, expires_at: float
    ) -> None:
        with self._lock:
            self._conn().execute(
                "INSERT INTO enrollment_tokens VALUES (%s, %s, %s, %s, %s, NULL)",
                (token_hash, host, department, created_at, expires_at),
            )

    @translated
    def token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT host, department, expires_at, used_at FROM enrollment_tokens "
                    "WHERE token_hash = %s",
                    (token_hash,),
                )
                .fetchone()
            )
        return None if row is None else TokenRecord(*row)

    @translated
    def mark_token_used(self, token_hash: str, at: float) -> bool:
        with self._lock:
            cursor = self._conn().execute(
                "UPDATE enrollment_tokens SET used_at = %s "
                "WHERE token_hash = %s AND used_at IS NULL",
                (at, token_hash),
            )
        return cursor.rowcount == 1

    @translated
    def add_certificate(self, record: CertificateRecord) -> None:
        with self._lock:
            self._conn().execute(
                "INSERT INTO agent_certificates VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    record.serial,
                    record.host,
                    record.department,
                    record.issued_at,
                    record.not_after,
                    record.revoked_at,
                ),
            )

    @translated
    def certificate(self, serial: str) -> CertificateRecord | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT serial, host, department, issued_at, not_after, revoked_at "
                    "FROM agent_certificates WHERE serial = %s",
                    (serial,),
                )
                .fetchone()
            )
        return None if row is None else CertificateRecord(*row)

    @translated
    def revoke_host(self, host: str, at: float) -> int:
        with self._lock:
            cursor = self._conn().execute(
                "UPDATE agent_certificates SET revoked_at = %s "
                "WHERE host = %s AND revoked_at IS NULL",
                (at, host),
            )
        return cursor.rowcount

    @translated
    def known_host(self, host: str) -> bool:
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT 1 FROM agent_certificates WHERE host = %s LIMIT 1", (host,))
                .fetchone()
            )
        return row is not None
