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

from collections.abc import Mapping, Sequence

from dcguard.collector.store.batch import Counters, plan
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
    POSTGRES,
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
from dcguard.collector.store.sql.reports import (
    AGENT_COLUMNS,
    Job,
    SqlReportStore,
    agent_values,
    applied,
    batch_error,
    one_line,
)
from dcguard.v1 import collector_pb2 as pb

__all__ = ["PostgresStore"]

_COLUMNS = (*AGENT_COLUMNS, "revision")
_COUNTERS = "first_seen, max_sequence, reports_stored, reports_lost, instance_id, revision"
_UPSERT = (
    f"INSERT INTO agents ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (host) DO UPDATE SET "
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


class PostgresStore(SqlReportStore[Connection]):
    """interface.ReportStore on one PostgreSQL database, safe beside other collectors."""

    _dialect = POSTGRES
    _columns = _COLUMNS
    # Other collectors write this database too: what they store must be read
    # back before this one exposes a host (changed_agents).
    shared = True

    def __init__(
        self,
        database: PostgresDatabase,
        *,
        readonly: bool = False,
        migrations: Sequence[Migration] = MIGRATIONS,
        hooks: Sequence[ReportHook] = (),
    ) -> None:
        self._database = database
        super().__init__(
            database,
            readonly=readonly,
            migrations=migrations,
            hooks=hooks,
            later_agent_steps=(AGENTS_SCHEMA, AGENTS_CLOCK_SKEW),
        )

    def _connect(self) -> Connection:
        return connect(self._database)

    def open(self) -> None:
        self._db = self._connect()
        if self._readonly:
            self._select = self._columns_present(self._db)
        else:
            try:
                migrate(self._db, self._migrations)
            except StoreError as exc:
                raise StoreError(f"cannot migrate {self._database}: {exc}") from exc

    def _present_columns(self, db: Connection) -> set[str]:
        return {
            row[0]
            for row in db.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'agents' AND table_schema = current_schema()"
            )
        }

    def changed_agents(self, known: Mapping[str, int]) -> list[AgentRecord]:
        """Agents whose revision is above known's (host -> revision; absent hosts: all)."""
        with self._lock:
            try:
                revisions = self._conn().execute("SELECT host, revision FROM agents").fetchall()
            except DatabaseError as exc:
                raise StoreError(
                    f"cannot read agents from {self._database}: {one_line(exc)}"
                ) from exc
        changed = [host for host, revision in revisions if revision > known.get(host, -1)]
        return self._read_agents(" WHERE host = ANY(?)", (changed,)) if changed else []

    def _commit(self, jobs: list[Job]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                self._transaction(jobs)
                return
            except DatabaseError as exc:
                if retryable(exc) and attempt + 1 < _ATTEMPTS:
                    continue
                message = one_line(exc)
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

    def _transaction(self, jobs: list[Job]) -> None:
        db = self._conn()
        with db.transaction():
            locked = any(report.events for job in jobs for report in job.batch.reports)
            if locked:
                # Events' ids must commit in order (postgres/transaction.py): the lock
                # comes before any row lock, so collectors never wait in a circle.
                db.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_ORDER_LOCK,))
            # One lock order for every collector: by host, then as queued.
            for job in sorted(jobs, key=lambda j: j.batch.identity.host):
                job.result, job.error = None, None
                try:
                    with db.transaction():  # a savepoint: a bad batch sinks only itself
                        job.result = self._apply(db, job.batch, event_order_locked=locked)
                except DatabaseError as exc:
                    if retryable(exc) or db.broken:
                        raise  # the whole transaction is gone: run it again, or fail all
                    job.error = batch_error(job.batch.identity.host, exc, is_transient)
                except Exception as exc:  # noqa: BLE001 - a bad batch or hook must not sink the rest
                    job.error = batch_error(job.batch.identity.host, exc, is_transient)

    def _apply(self, db: Connection, batch: StoreJob, *, event_order_locked: bool) -> ApplyResult:
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
        hooks_tx = PostgresTransaction(db, event_order_locked=event_order_locked)
        self._run_hooks(hooks_tx, identity.host, done.new)
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
                *agent_values(record, done.new[-1].SerializeToString() if done.new else None),
                record.revision,
            ),
        )
        return applied(record, done)
