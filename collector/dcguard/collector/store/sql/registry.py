"""The enrollment registry's rows in SQL, for both engines: token hashes and issued certificates.

A token is spent by one UPDATE ... WHERE used_at IS NULL: on PostgreSQL,
of two collectors racing on it, one updates the row and the other
re-checks the condition after waiting for it, so exactly one enrolls. A
revocation is a committed row every collector reads on the agent's next
call. Each engine subclasses SqlRegistry with its Dialect and connection.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from dcguard.collector.store.model import CertificateRecord, StoreError, TokenRecord
from dcguard.collector.store.sql.dialect import Connection, Dialect, translated

__all__ = ["SqlRegistry"]


class SqlRegistry:
    """interface.RegistryStore on a connection of its own (autocommit: each call commits)."""

    _dialect: ClassVar[Dialect]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: Connection | None = None

    def _connect(self) -> Connection:
        """A new connection of the registry's own (the engine's)."""
        raise NotImplementedError

    def open(self) -> None:
        """Open the database (the report store has created it and applied the schema)."""
        self._db = self._connect()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(self, statement: str, params: Sequence[Any]) -> Any:
        """Execute on the open connection, made again first if the last one broke."""
        if self._db is None:
            raise StoreError("enrollment registry is not open")
        if self._dialect.broken(self._db):
            self._db = self._connect()
        return self._db.execute(self._dialect.sql(statement), params)

    @translated
    def add_token(
        self, token_hash: str, host: str, department: str, created_at: float, expires_at: float
    ) -> None:
        with self._lock:
            self._run(
                "INSERT INTO enrollment_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                (token_hash, host, department, created_at, expires_at),
            )

    @translated
    def token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            row = self._run(
                "SELECT host, department, expires_at, used_at FROM enrollment_tokens "
                "WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
        return None if row is None else TokenRecord(*row)

    @translated
    def mark_token_used(self, token_hash: str, at: float) -> bool:
        with self._lock:
            cursor = self._run(
                "UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                (at, token_hash),
            )
        return bool(cursor.rowcount == 1)

    @translated
    def add_certificate(self, record: CertificateRecord) -> None:
        with self._lock:
            self._run(
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
            row = self._run(
                "SELECT serial, host, department, issued_at, not_after, revoked_at "
                "FROM agent_certificates WHERE serial = ?",
                (serial,),
            ).fetchone()
        return None if row is None else CertificateRecord(*row)

    @translated
    def revoke_host(self, host: str, at: float) -> int:
        with self._lock:
            cursor = self._run(
                "UPDATE agent_certificates SET revoked_at = ? "
                "WHERE host = ? AND revoked_at IS NULL",
                (at, host),
            )
        return int(cursor.rowcount)

    @translated
    def known_host(self, host: str) -> bool:
        with self._lock:
            row = self._run(
                "SELECT 1 FROM agent_certificates WHERE host = ? LIMIT 1", (host,)
            ).fetchone()
        return row is not None
