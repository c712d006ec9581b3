"""The SQLite engine's report store: each agent's identity, counters and latest report.

The store is the source of truth; the in-memory state is rebuilt from it at
start. Writes commit with synchronous=FULL before the agent is acknowledged,
so an acknowledged report survives a crash or power loss of the collector.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcguard.collector.identity import PeerIdentity
from dcguard.collector.store.batch import MAX_SEQUENCE_JUMP, Counters, SequenceRefused, plan
from dcguard.collector.store.batch import record as make_record
from dcguard.collector.store.interface import ReportHook
from dcguard.collector.store.model import AgentRecord, ApplyResult, StoreError, StoreJob
from dcguard.collector.store.sqlite.connection import (
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

_COLUMNS = (
    "host, department, agent_version, os, kernel, interval_seconds, instance_id, "
    "first_seen, last_seen, max_sequence, reports_stored, reports_lost, latest_report, "
    "clock_skew_seconds"
)
# Columns later migrations added, with what a row had before them: a read-only
# reader (the CLI) of a database no collector of this version has opened yet
# reads these instead of failing.
_LATER_COLUMNS = {"clock_skew_seconds": "0.0"}
# What a batch needs of the agent's row: everything but the latest report,
# which is only read back (and parsed) when the batch stores nothing new.
_COUNTERS = "first_seen, max_sequence, reports_stored, reports_lost, instance_id"


def _record(row: tuple[Any, ...]) -> AgentRecord:
    (
        host,
        department,
        agent_version,
        os_name,
        kernel,
        interval,
        instance_id,
        first_seen,
        last_seen,
        max_sequence,
        stored,
        lost,
        blob,
        skew,
    ) = row
    return AgentRecord(
        host=host,
        department=department,
        agent_version=agent_version,
        os=os_name,
        kernel=kernel,
        interval_seconds=interval,
        instance_id=instance_id,
        first_seen=first_seen,
        last_seen=last_seen,
        max_sequence=max_sequence,
        reports_stored=stored,
        reports_lost=lost,
        latest=pb.Report.FromString(blob) if isinstance(blob, bytes) else None,
        clock_skew_seconds=skew,
    )


@dataclass
class _Job:
    """One batch waiting to be committed."""

    batch: StoreJob
    done: threading.Event = field(default_factory=threading.Event)
    result: ApplyResult | None = None
    error: StoreError | None = None


def _with_agent_steps(migrations: tuple[Migration, ...]) -> tuple[Migration, ...]:
    if AGENTS_SCHEMA not in migrations or AGENTS_CLOCK_SKEW in migrations:
        return migrations
    at = migrations.index(AGENTS_SCHEMA) + 1
    return (*migrations[:at], AGENTS_CLOCK_SKEW, *migrations[at:])


def _batch_error(host: str, exc: Exception) -> StoreError:
    if isinstance(exc, SequenceRefused):
        return StoreError(str(exc), transient=False, reason=exc.reason)
    if isinstance(exc, StoreError):  # a hook's write, already judged where it failed
        return StoreError(f"cannot store reports for {host}: {exc}", transient=exc.transient)
    if is_transient(exc):
        return StoreError(f"cannot store reports for {host}: {exc}")
    return StoreError(
        f"a report of {host} cannot be stored ({type(exc).__name__}: {exc})", transient=False
    )


def _result(job: _Job) -> ApplyResult:
    assert job.result is not None  # noqa: S101 - set with done unless error is
    return job.result


class SqliteStore:
    """Thread-safe access to the collector database (one writer at a time)."""

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        migrations: Sequence[Migration] = MIGRATIONS,
        hooks: Sequence[ReportHook] = (),
    ) -> None:
        self._path = path
        self._readonly = readonly
        self._migrations = _with_agent_steps(tuple(migrations))
        self._hooks = tuple(hooks)
        self._lock = threading.Lock()  # held by whoever is committing
        self._queue_lock = threading.Lock()
        self._queue: list[_Job] = []
        self._db: Connection | None = None
        self._select = _COLUMNS

    def open(self) -> None:
        if self._readonly:
            self._db = connect(self._path, readonly=True)
            self._select = self._columns_present(self._db)
            return
        try:
            self._db = connect(self._path)
            migrate(self._db, self._migrations)
        except StoreError as exc:
            raise StoreError(f"cannot open database {self._path}: {exc}") from exc

    def _columns_present(self, db: Connection) -> str:
        """_COLUMNS, with the default standing in for a column the database lacks yet."""
        try:
            present = {row[1] for row in db.execute("PRAGMA table_info(agents)")}
        except DatabaseError:
            return _COLUMNS  # the read below says what is wrong
        if not present:
            return _COLUMNS
        return ", ".join(
            name
            if name in present or name not in _LATER_COLUMNS
            else f"{_LATER_COLUMNS[name]} AS {name}"
            for name in (part.strip() for part in _COLUMNS.split(","))
        )

    def _conn(self) -> Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def agents(self) -> list[AgentRecord]:
        """Every known agent with its latest report."""
        with self._lock:
            try:
                rows = (
                    self._conn()
                    .execute(f"SELECT {self._select} FROM agents ORDER BY host")
                    .fetchall()
                )
            except DatabaseError as exc:
                raise StoreError(f"cannot read agents from {self._path}: {exc}") from exc
        return [_record(row) for row in rows]

    # One collector owns an SQLite file: its own copy of each host is the truth.
    shared = False

    def changed_agents(self, known: Mapping[str, int]) -> list[AgentRecord]:
        """Nothing: no other collector writes this database."""
        return []

    def apply(
        self,
        identity: PeerIdentity,
        agent: pb.AgentInfo,
        reports: Sequence[pb.Report],
        received_at: float,
    ) -> ApplyResult:
        """Store one batch (see apply_many); raise StoreError if it could not be."""
        result = self.apply_many([StoreJob(identity, agent, reports, received_at)])[0]
        if isinstance(result, StoreError):
            raise result
        return result

    def apply_many(self, batches: Sequence[StoreJob]) -> list[ApplyResult | StoreError]:
        """Store batches once: sequences already stored count as duplicates, gaps as lost.

        Returns only after the batches are committed durably, with each one's
        result or error in order. Concurrent calls are committed together
        (group commit): whichever caller holds the write lock commits every
        batch queued meanwhile in one transaction, each in its own savepoint,
        so one fsync serves many agents and one failing batch does not undo
        the others.
        """
        if not batches:
            return []
        jobs = [_Job(batch) for batch in batches]
        with self._queue_lock:
            self._queue.extend(jobs)
        while not jobs[-1].done.is_set():
            with self._lock:
                if jobs[-1].done.is_set():
                    break
                with self._queue_lock:
                    queued, self._queue = self._queue, []
                self._commit(queued)
        # Queued together, so committed together: every job is done now.
        return [job.error or _result(job) for job in jobs]

    def _commit(self, jobs: list[_Job]) -> None:
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
                    job.error = _batch_error(job.batch.identity.host, exc)
                db.execute("RELEASE batch")
            db.execute("COMMIT")
        except DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for job in jobs:
                job.result, job.error = None, StoreError(f"cannot commit reports: {exc}")
        finally:
            for job in jobs:
                job.done.set()

    def _apply(self, db: Connection, row: tuple[Any, ...] | None, batch: StoreJob) -> ApplyResult:
        identity, agent = batch.identity, batch.agent
        counters = Counters(*row) if row is not None else None
        done = plan(counters, agent.instance_id, batch.reports, batch.acked_sequence)
        tx = SqliteTransaction(db)  # what hooks write through, inside this savepoint
        for report in done.new:
            for hook in self._hooks:
                hook.on_stored(tx, identity.host, report)
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
        db.execute(
            f"INSERT OR REPLACE INTO agents ({_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.host,
                record.department,
                record.agent_version,
                record.os,
                record.kernel,
                record.interval_seconds,
                record.instance_id,
                record.first_seen,
                record.last_seen,
                record.max_sequence,
                record.reports_stored,
                record.reports_lost,
                blob,
                record.clock_skew_seconds,
            ),
        )
        return ApplyResult(
            record=record,
            stored=len(done.new),
            duplicates=done.duplicates,
            acknowledged_elsewhere=done.acknowledged_elsewhere,
        )
