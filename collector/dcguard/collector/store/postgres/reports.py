"""Reports and each agent's latest state in PostgreSQL, shared by every collector on it.

Exactly once across collectors: a batch locks its agent's row
(SELECT ... FOR UPDATE) before deciding which sequences are new (the rule
in store/batch.py), so two collectors handed the same batch at the same
moment take turns, and the second finds every sequence stored. A host
seen for the first time gets its row from INSERT ... ON CONFLICT DO
NOTHING first, so there is always a row to lock. Group commit is kept:
batches queued while one commit runs go in the next transaction together,
each in its own savepoint, locked in host order so two collectors'
transactions never wait on each other in a circle.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dcguard.collector.identity import PeerIdentity
from dcguard.collector.store.batch import Counters, SequenceRefused, plan
from dcguard.collector.store.batch import record as make_record
from dcguard.collector.store.interface import ReportHook
from dcguard.collector.store.model import (
    AgentRecord,
    ApplyResult,
    PostgresDatabase,
    StoreError,
    StoreJob,
)
from dcguard.collector.store.postgres.connection import (
    EVENT_ORDER_LOCK,
    Connection,
    DatabaseError,
    Migration,
    connect,
    is_transient,
    migrate,
    retryable,
)
from dcguard.collector.store.postgres.schema import AGENTS_CLOCK_SKEW, AGENTS_SCHEMA, MIGRATIONS
from dcguard.collector.store.postgres.transaction import PostgresTransaction
from dcguard.v1 import collector_pb2 as pb

__all__ = ["PostgresStore"]

_COLUMNS = (
    "host, department, agent_version, os, kernel, interval_seconds, instance_id, "
    "first_seen, last_seen, max_sequence, reports_stored, reports_lost, latest_report, "
    "revision, clock_skew_seconds"
)
# Columns later migrations added, with what a row had before them: a read-only
# reader (the CLI) of a database no collector of this version has migrated yet
# reads these instead of failing (as the SQLite engine does).
_LATER_COLUMNS = {"clock_skew_seconds": "0.0"}
_COUNTERS = "first_seen, max_sequence, reports_stored, reports_lost, instance_id, revision"
_UPSERT = (
    f"INSERT INTO agents ({_COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (host) DO UPDATE SET "
    "department = excluded.department, agent_version = excluded.agent_version, "
    "os = excluded.os, kernel = excluded.kernel, interval_seconds = excluded.interval_seconds, "
    "instance_id = excluded.instance_id, first_seen = excluded.first_seen, "
    "last_seen = excluded.last_seen, max_sequence = excluded.max_sequence, "
    "reports_stored = excluded.reports_stored, reports_lost = excluded.reports_lost, "
    "latest_report = COALESCE(excluded.latest_report, agents.latest_report), "
    "revision = excluded.revision, clock_skew_seconds = excluded.clock_skew_seconds"
)
# A deadlock or serialization failure is retried this many times before the
# batches get an error (and their agents retry later).
_ATTEMPTS = 3


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


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
        revision,
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
        latest=pb.Report.FromString(bytes(blob)) if blob is not None else None,
        revision=revision,
        clock_skew_seconds=skew,
    )


def _with_agent_steps(migrations: tuple[Migration, ...]) -> tuple[Migration, ...]:
    """The agents table's later steps right after AGENTS_SCHEMA (as the SQLite engine does)."""
    if AGENTS_SCHEMA not in migrations or AGENTS_CLOCK_SKEW in migrations:
        return migrations
    at = migrations.index(AGENTS_SCHEMA) + 1
    return (*migrations[:at], AGENTS_CLOCK_SKEW, *migrations[at:])


def _batch_error(host: str, exc: Exception) -> StoreError:
    """What one batch's failure inside its savepoint means: come back later, or never."""
    if isinstance(exc, SequenceRefused):
        return StoreError(str(exc), transient=False, reason=exc.reason)
    if isinstance(exc, StoreError):  # a hook's write, already judged where it failed
        return StoreError(f"cannot store reports for {host}: {exc}", transient=exc.transient)
    if is_transient(exc):
        return StoreError(f"cannot store reports for {host}: {_one_line(exc)}")
    return StoreError(
        f"a report of {host} cannot be stored ({type(exc).__name__}: {_one_line(exc)})",
        transient=False,
    )


@dataclass
class _Job:
    batch: StoreJob
    done: threading.Event = field(default_factory=threading.Event)
    result: ApplyResult | None = None
    error: StoreError | None = None


class PostgresStore:
    """interface.ReportStore on one PostgreSQL database, safe beside other collectors."""

    def __init__(
        self,
        database: PostgresDatabase,
        *,
        readonly: bool = False,
        migrations: Sequence[Migration] = MIGRATIONS,
        hooks: Sequence[ReportHook] = (),
    ) -> None:
        self._database = database
        self._migrations = _with_agent_steps(tuple(migrations))
        self._readonly = readonly
        self._hooks = tuple(hooks)
        self._lock = threading.Lock()  # held by whoever is committing
        self._queue_lock = threading.Lock()
        self._queue: list[_Job] = []
        self._db: Connection | None = None
        self._select = _COLUMNS

    def open(self) -> None:
        self._db = connect(self._database)
        if self._readonly:
            self._select = self._columns_present(self._db)
        else:
            try:
                migrate(self._db, self._migrations)
            except StoreError as exc:
                raise StoreError(f"cannot migrate {self._database}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _columns_present(self, db: Connection) -> str:
        """_COLUMNS, with the default standing in for a column the database lacks yet."""
        try:
            present = {
                row[0]
                for row in db.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'agents' AND table_schema = current_schema()"
                )
            }
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
        """The connection, made again if the last one broke (a restarted or failed-over server)."""
        if self._db is None:
            raise StoreError("store is not open")
        if self._db.closed or self._db.broken:
            self._db = connect(self._database)
        return self._db

    def agents(self) -> list[AgentRecord]:
        with self._lock:
            try:
                rows = (
                    self._conn()
                    .execute(f"SELECT {self._select} FROM agents ORDER BY host")
                    .fetchall()
                )
            except DatabaseError as exc:
                raise StoreError(
                    f"cannot read agents from {self._database}: {_one_line(exc)}"
                ) from exc
        return [_record(row) for row in rows]

    # Other collectors write this database too: what they store must be read
    # back before this one exposes a host (changed_agents).
    shared = True

    def changed_agents(self, known: Mapping[str, int]) -> list[AgentRecord]:
        """Agents whose revision is above known's (host -> revision; absent hosts: all)."""
        with self._lock:
            try:
                db = self._conn()
                revisions = db.execute("SELECT host, revision FROM agents").fetchall()
                changed = [host for host, revision in revisions if revision > known.get(host, -1)]
                rows = (
                    db.execute(
                        f"SELECT {self._select} FROM agents WHERE host = ANY(%s)", (changed,)
                    ).fetchall()
                    if changed
                    else []
                )
            except DatabaseError as exc:
                raise StoreError(
                    f"cannot read agents from {self._database}: {_one_line(exc)}"
                ) from exc
        return [_record(row) for row in rows]

    def apply(
        self,
        identity: PeerIdentity,
        agent: pb.AgentInfo,
        reports: Sequence[pb.Report],
        received_at: float,
    ) -> ApplyResult:
        result = self.apply_many([StoreJob(identity, agent, reports, received_at)])[0]
        if isinstance(result, StoreError):
            raise result
        return result

    def apply_many(self, batches: Sequence[StoreJob]) -> list[ApplyResult | StoreError]:
        """Store batches once (see the module's docstring); returns after the commit."""
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
        return [job.error or job.result or StoreError("not stored") for job in jobs]

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            for attempt in range(_ATTEMPTS):
                try:
                    self._transaction(jobs)
                    return
                except DatabaseError as exc:
                    if retryable(exc) and attempt + 1 < _ATTEMPTS:
                        continue
                    message = _one_line(exc)
                    for job in jobs:
                        job.result, job.error = (
                            None,
                            StoreError(f"cannot commit reports: {message}"),
                        )
                    return
                except StoreError as exc:  # the database could not even be reached
                    for job in jobs:
                        job.result, job.error = None, StoreError(f"cannot commit reports: {exc}")
                    return
        finally:
            for job in jobs:
                job.done.set()

    def _transaction(self, jobs: list[_Job]) -> None:
        db = self._conn()
        with db.transaction():
            if any(report.events for job in jobs for report in job.batch.reports):
                # Events' ids must commit in order (postgres/events.py): the lock
                # comes before any row lock, so collectors never wait in a circle.
                db.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_ORDER_LOCK,))
            # One lock order for every collector: by host, then as queued.
            for job in sorted(jobs, key=lambda j: j.batch.identity.host):
                job.result, job.error = None, None
                try:
                    with db.transaction():  # a savepoint: a bad batch sinks only itself
                        job.result = self._apply(db, job.batch)
                except DatabaseError as exc:
                    if retryable(exc) or db.broken:
                        raise  # the whole transaction is gone: run it again, or fail all
                    job.error = _batch_error(job.batch.identity.host, exc)
                except Exception as exc:  # noqa: BLE001 - a bad batch or hook must not sink the rest
                    job.error = _batch_error(job.batch.identity.host, exc)

    def _apply(self, db: Connection, batch: StoreJob) -> ApplyResult:
        identity, agent = batch.identity, batch.agent
        db.execute(
            "INSERT INTO agents (host, department, first_seen, last_seen, instance_id) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (host) DO NOTHING",
            (
                identity.host,
                identity.department,
                batch.received_at,
                batch.received_at,
                agent.instance_id,
            ),
        )
        row = db.execute(
            f"SELECT {_COUNTERS} FROM agents WHERE host = %s FOR UPDATE", (identity.host,)
        ).fetchone()
        counters = Counters(*row) if row is not None else None
        done = plan(counters, agent.instance_id, batch.reports, batch.acked_sequence)
        tx = PostgresTransaction(db)
        for report in done.new:
            for hook in self._hooks:
                hook.on_stored(tx, identity.host, report)
        latest = done.new[-1] if done.new else None
        skew = batch.clock_skew
        if latest is None:
            kept = db.execute(
                "SELECT latest_report, clock_skew_seconds FROM agents WHERE host = %s",
                (identity.host,),
            ).fetchone()
            if kept is not None:
                skew = kept[1]
                if kept[0] is not None:
                    latest = pb.Report.FromString(bytes(kept[0]))
        revision = (counters.revision if counters is not None else 0) + 1
        record = make_record(
            counters,
            identity,
            agent,
            done,
            batch.received_at,
            latest,
            revision,
            clock_skew_seconds=skew,
        )
        db.execute(
            _UPSERT,
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
                done.new[-1].SerializeToString() if done.new else None,
                record.revision,
                record.clock_skew_seconds,
            ),
        )
        return ApplyResult(
            record=record,
            stored=len(done.new),
            duplicates=done.duplicates,
            acknowledged_elsewhere=done.acknowledged_elsewhere,
        )
