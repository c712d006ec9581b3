"""The SQLite engine's report store: each agent's identity, counters and latest report.

The store is the source of truth; the in-memory state is rebuilt from it at
start. Writes commit with synchronous=FULL before the agent is acknowledged,
so an acknowledged report survives a crash or power loss of the collector.
What both engines share (reads, group commit, batch errors) is
sql/reports.py's; here is SQLite's one writer: BEGIN IMMEDIATE, a savepoint
per batch, and INSERT OR REPLACE of the agents row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcguard.collector.store.batch import MAX_SEQUENCE_JUMP, Counters, plan
from dcguard.collector.store.batch import record as make_record
from dcguard.collector.store.interface import ReportHook
from dcguard.collector.store.model import ApplyResult, StoreError, StoreJob
from dcguard.collector.store.sql.reports import (
    AGENT_COLUMNS,
    Job,
    SqlReportStore,
    agent_values,
    applied,
    batch_error,
)
from dcguard.collector.store.sqlite.connection import (
    SQLITE,
    Connection,
    DatabaseError,
    Migration,
    connect,
    is_transient,
    migrate,
)
from dcguard.collector.store.sqlite.schema import AGENTS_CLOCK_SKEW, AGENTS_SCHEMA, MIGRATIONS
from dcguard.collector.store.sqlite.transaction import SqliteTransaction
from dcguard.v1 import collector_pb2 as pb

# MAX_SEQUENCE_JUMP: the rule lives in store/batch.py (both engines); named here too.
__all__ = ["MAX_SEQUENCE_JUMP", "SqliteStore"]

_REPLACE = (
    f"INSERT OR REPLACE INTO agents ({', '.join(AGENT_COLUMNS)}) VALUES "
    f"({', '.join('?' * len(AGENT_COLUMNS))})"
)
# What a batch needs of the agent's row: everything but the latest report,
# which is only read back (and parsed) when the batch stores nothing new.
_COUNTERS = "first_seen, max_sequence, reports_stored, reports_lost, instance_id"


class SqliteStore(SqlReportStore[Connection]):
    """Thread-safe access to the collector database (one writer at a time)."""

    _dialect = SQLITE

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        migrations: Sequence[Migration] = MIGRATIONS,
        hooks: Sequence[ReportHook] = (),
    ) -> None:
        self._path = path
        super().__init__(
            path,
            readonly=readonly,
            migrations=migrations,
            hooks=hooks,
            later_agent_steps=(AGENTS_SCHEMA, AGENTS_CLOCK_SKEW),
        )

    def _connect(self) -> Connection:
        return connect(self._path, readonly=self._readonly)

    def open(self) -> None:
        if self._readonly:
            self._db = self._connect()
            self._select = self._columns_present(self._db)
            return
        try:
            self._db = self._connect()
            migrate(self._db, self._migrations)
        except StoreError as exc:
            raise StoreError(f"cannot open database {self._path}: {exc}") from exc

    def _present_columns(self, db: Connection) -> set[str]:
        return {row[1] for row in db.execute("PRAGMA table_info(agents)")}

    def _commit(self, jobs: list[Job]) -> None:
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            for job in jobs:
                db.execute("SAVEPOINT batch")
                try:
                    batch = job.batch
                    row = db.execute(
                        f"SELECT {_COUNTERS} FROM agents WHERE host = ?", (batch.identity.host,)
                    ).fetchone()
                    job.result = self._apply(db, row, batch)
                except Exception as exc:  # noqa: BLE001 - a bad batch or hook must not sink the rest
                    db.execute("ROLLBACK TO batch")
                    job.result = None
                    job.error = batch_error(job.batch.identity.host, exc, is_transient)
                db.execute("RELEASE batch")
            db.execute("COMMIT")
        except DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for job in jobs:
                job.result, job.error = None, StoreError(f"cannot commit reports: {exc}")

    def _apply(self, db: Connection, row: tuple[Any, ...] | None, batch: StoreJob) -> ApplyResult:
        identity, agent = batch.identity, batch.agent
        counters = Counters(*row) if row is not None else None
        done = plan(counters, agent.instance_id, batch.reports, batch.acked_sequence)
        # What hooks write through, inside this savepoint.
        self._run_hooks(SqliteTransaction(db), identity.host, done.new)
        latest = done.new[-1] if done.new else None
        blob = latest.SerializeToString() if latest is not None else None
        skew = batch.clock_skew
        if latest is None and row is not None:
            blob, skew = db.execute(
                "SELECT latest_report, clock_skew_seconds FROM agents WHERE host = ?",
                (identity.host,),
            ).fetchone()
            latest = pb.Report.FromString(blob) if isinstance(blob, bytes) else None
        record = make_record(
            counters, identity, agent, done, batch.received_at, latest, clock_skew_seconds=skew
        )
        db.execute(_REPLACE, agent_values(record, blob))
        return applied(record, done)
