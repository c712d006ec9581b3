"""The enrollment registry's rows in SQLite: token hashes and issued certificates."""

from __future__ import annotations

import threading
from pathlib import Path

from dcguard.collector.store.model import CertificateRecord, StoreError, TokenRecord
from dcguard.collector.store.sqlite.connection import Connection, connect, translated

__all__ = ["SqliteRegistry"]


class SqliteRegistry:
    """interface.RegistryStore on a connection of its own (WAL lets the CLI and server share it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: Connection | None = None

    def open(self) -> None:
        """Open the database (the report store has created it and applied the schema)."""
        self._db = connect(self._path)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> Connection:
        if self._db is None:
            raise StoreError("enrollment registry is not open")
        return self._db

    @translated
    def add_token(
        self, token_hash: str, host: str, department: str, created_at: float, expires_at: float
    ) -> None:
        with self._lock:
            self._conn().execute(
                "INSERT INTO enrollment_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                (token_hash, host, department, created_at, expires_at),
            )

    @translated
    def token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT host, department, expires_at, used_at FROM enrollment_tokens "
                    "WHERE token_hash = ?",
                    (token_hash,),
                )
                .fetchone()
            )
        return None if row is None else TokenRecord(*row)

    @translated
    def mark_token_used(self, token_hash: str, at: float) -> bool:
        with self._lock:
            cursor = self._conn().execute(
                "UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                (at, token_hash),
            )
        return cursor.rowcount == 1

    @translated
    def add_certificate(self, record: CertificateRecord) -> None:
        with self._lock:
            self._conn().execute(
                "INSERT INTO agent_certificates VALUES (?, ?, ?, ?, ?, ?)",
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
                    "FROM agent_certificates WHERE serial = ?",
                    (serial,),
                )
                .fetchone()
            )
        return None if row is None else CertificateRecord(*row)

    @translated
    def revoke_host(self, host: str, at: float) -> int:
        with self._lock:
            cursor = self._conn().execute(
                "UPDATE agent_certificates SET revoked_at = ? "
                "WHERE host = ? AND revoked_at IS NULL",
                (at, host),
            )
        return cursor.rowcount

    @translated
    def known_host(self, host: str) -> bool:
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT 1 FROM agent_certificates WHERE host = ? LIMIT 1", (host,))
                .fetchone()
            )
        return row is not None
