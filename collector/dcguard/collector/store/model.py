"""What the store hands out and takes in, whatever the engine: plain values, no database types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from dcguard.collector.identity import PeerIdentity
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "AgentRecord",
    "ApplyResult",
    "CertificateRecord",
    "Database",
    "DatabaseUnreachable",
    "FsSample",
    "PostgresDatabase",
    "StoreError",
    "StoreJob",
    "TokenRecord",
]

# One filesystem free-space sample of the filling-fast history: (host,
# mountpoint, time, available bytes). A plain tuple, as the driver returns
# it: a collector loads millions at start, and wrapping each costs seconds.
FsSample = tuple[str, str, float, float]


class StoreError(Exception):
    """The database could not be opened, read or written, or a batch could not be stored.

    transient: the condition may pass (a locked or busy database, a full
    disk, an I/O error), so the agent should send the batch again. Otherwise
    the batch itself is at fault (a hook cannot handle its content, an
    implausible sequence): sending it again can never succeed, so it is
    refused for good, with `reason` as the rejection reason.
    """

    def __init__(self, message: str, *, transient: bool = True, reason: str = "unstorable") -> None:
        super().__init__(message)
        self.transient = transient
        self.reason = reason


@dataclass(frozen=True)
class AgentRecord:
    """One agent as stored: identity, counters and its latest report."""

    host: str
    department: str
    agent_version: str
    os: str
    kernel: str
    interval_seconds: float
    instance_id: str
    first_seen: float
    last_seen: float
    max_sequence: int
    reports_stored: int
    reports_lost: int
    latest: pb.Report | None
    # Bumped by every batch stored for the host in a shared store (0 where
    # the store is not shared): which of two copies of a host is newer, by
    # the database's word rather than by two collectors' clocks.
    revision: int = 0
    # The newest report's collected_at as sent minus its arrival (clock.py).
    clock_skew_seconds: float = 0.0


@dataclass(frozen=True)
class ApplyResult:
    record: AgentRecord
    stored: int
    duplicates: int
    # Sequences missing here that the agent says a collector acknowledged:
    # taken by a collector with another store (not counted lost).
    acknowledged_elsewhere: int = 0


@dataclass(frozen=True)
class StoreJob:
    """One agent's batch to store."""

    identity: PeerIdentity
    agent: pb.AgentInfo
    reports: Sequence[pb.Report]
    received_at: float
    # The highest sequence any collector acknowledged to the agent before (its word).
    acked_sequence: int = 0
    # The newest report's clock skew (clock.py); kept only if a report is new.
    clock_skew: float = 0.0


@dataclass(frozen=True)
class TokenRecord:
    """One enrollment token as stored (by its hash; the token itself is never kept)."""

    host: str
    department: str
    expires_at: float
    used_at: float | None


@dataclass(frozen=True)
class CertificateRecord:
    """One certificate issued to an agent, by serial (lowercase hex)."""

    serial: str
    host: str
    department: str
    issued_at: float
    not_after: float
    revoked_at: float | None


class DatabaseUnreachable(StoreError):
    """The database server could not be reached or refused our credentials.

    Apart from StoreError so `serve` can say so in one line and exit 2 at
    start: it is a configuration problem (DSN, password, TLS), not a crash.
    """


@dataclass(frozen=True)
class PostgresDatabase:
    """Where a PostgreSQL store lives: a libpq DSN and the password read from its file.

    The password is kept out of repr and str: this value is logged, printed
    in error lines and carried to ingest processes, and the secret must
    appear in none of the first two.
    """

    dsn: str
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"PostgreSQL database ({self.dsn})"


# Where the collector's data lives: an SQLite file, or a PostgreSQL database.
Database = Union[Path, PostgresDatabase]
