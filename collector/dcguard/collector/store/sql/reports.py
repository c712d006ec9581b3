"""What both engines' report stores share: the agents row, group commit, batch errors, reads.

Each engine's report store (sqlite/reports.py, postgres/reports.py)
subclasses SqlReportStore and writes only what differs: how it opens and
migrates, how one transaction of batches is committed (SQLite's one
writer; PostgreSQL's row locks, event-order lock and retries), and how the
agents row is written.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generic, TypeVar

from dcguard.collector.identity import PeerIdentity
from dcguard.collector.store.batch import Plan, SequenceRefused
from dcguard.collector.store.interface import ReportHook, Transaction
from dcguard.collector.store.model import AgentRecord, ApplyResult, StoreError, StoreJob
from dcguard.collector.store.sql.dialect import Connection, Dialect
from dcguard.collector.store.sql.schema import Migration
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "AGENT_COLUMNS",
    "Job",
    "SqlReportStore",
    "agent_values",
    "applied",
    "batch_error",
    "one_line",
]

# The agents row as both engines store it (PostgreSQL adds revision).
AGENT_COLUMNS = (
    "host",
    "department",
    "agent_version",
    "os",
    "kernel",
    "interval_seconds",
    "instance_id",
    "first_seen",
    "last_seen",
    "max_sequence",
    "reports_stored",
    "reports_lost",
    "latest_report",
    "clock_skew_seconds",
)
_C = TypeVar("_C", bound=Connection)  # the engine's connection type

# Columns later migrations added, with what a row had before them: a read-only
# reader (the CLI) of a database no collector of this version has opened yet
# reads these instead of failing.
_LATER_COLUMNS = {"clock_skew_seconds": "0.0"}


def one_line(exc: BaseException) -> str:
    """The message on one line (a server's can span lines: DETAIL, HINT) for the log."""
    return " ".join(str(exc).split())


def batch_error(
    host: str, exc: Exception, is_transient: Callable[[BaseException], bool]
) -> StoreError:
    """What one batch's failure inside its savepoint means: come back later, or never."""
    if isinstance(exc, SequenceRefused):
        return StoreError(str(exc), transient=False, reason=exc.reason)
    if isinstance(exc, StoreError):  # a hook's write, already judged where it failed
        return StoreError(f"cannot store reports for {host}: {exc}", transient=exc.transient)
    if is_transient(exc):
        return StoreError(f"cannot store reports for {host}: {one_line(exc)}")
    return StoreError(
        f"a report of {host} cannot be stored ({type(exc).__name__}: {one_line(exc)})",
        transient=False,
    )


def agent_values(record: AgentRecord, blob: bytes | None) -> tuple[Any, ...]:
    """The agents row of a record, in AGENT_COLUMNS' order (blob: the latest report, or None)."""
    return (
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
    )


def applied(record: AgentRecord, done: Plan) -> ApplyResult:
    """What storing a batch planned as done did."""
    return ApplyResult(
        record=record,
        stored=len(done.new),
        duplicates=done.duplicates,
        acknowledged_elsewhere=done.acknowledged_elsewhere,
    )


@dataclass
class Job:
    """One batch waiting to be committed."""

    batch: StoreJob
    done: threading.Event = field(default_factory=threading.Event)
    result: ApplyResult | None = None
    error: StoreError | None = None


class SqlReportStore(Generic[_C]):
    """interface.ReportStore's common part; the engine commits (see _commit)."""

    _dialect: ClassVar[Dialect]
    # The agents columns this engine reads, in its order.
    _columns: ClassVar[tuple[str, ...]] = AGENT_COLUMNS
    # True where other collectors write the same database (interface.ReportStore).
    shared: bool = False

    def __init__(
        self,
        where: object,
        *,
        readonly: bool,
        migrations: Sequence[Migration],
        hooks: Sequence[ReportHook],
        later_agent_steps: tuple[Migration, Migration],
    ) -> None:
        self._where = where  # the database as messages name it
        self._readonly = readonly
        self._migrations = _with_agent_steps(tuple(migrations), *later_agent_steps)
        self._hooks = tuple(hooks)
        self._lock = threading.Lock()  # held by whoever is committing
        self._queue_lock = threading.Lock()
        self._queue: list[Job] = []
        self._db: _C | None = None
        self._select = ", ".join(self._columns)

    def _connect(self) -> _C:
        """A new connection of the store's own (the engine's)."""
        raise NotImplementedError

    def _present_columns(self, db: _C) -> set[str]:
        """The agents table's columns in the database (none if it has no such table)."""
        raise NotImplementedError

    def _commit(self, jobs: list[Job]) -> None:
        """Store every job in one transaction, setting each one's result or error."""
        raise NotImplementedError

    def _columns_present(self, db: _C) -> str:
        """The columns to read, the default standing in for a column the database lacks yet."""
        try:
            present = self._present_columns(db)
        except self._dialect.errors:
            return self._select  # the read below says what is wrong
        if not present:
            return self._select
        return ", ".join(
            name
            if name in present or name not in _LATER_COLUMNS
            else f"{_LATER_COLUMNS[name]} AS {name}"
            for name in self._columns
        )

    def _conn(self) -> _C:
        """The connection, made again if the last one broke (a restarted or failed-over server)."""
        if self._db is None:
            raise StoreError("store is not open")
        if self._dialect.broken(self._db):
            self._db = self._connect()
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _read_agents(self, where: str = "", params: Sequence[Any] = ()) -> list[AgentRecord]:
        """Agents rows (all, or those `where` selects), by host name."""
        with self._lock:
            try:
                rows = (
                    self._conn()
                    .execute(
                        self._dialect.sql(
                            f"SELECT {self._select} FROM agents{where} ORDER BY host"
                        ),
                        params,
                    )
                    .fetchall()
                )
            except self._dialect.errors as exc:
                raise StoreError(f"cannot read agents from {self._where}: {one_line(exc)}") from exc
        return [self._record(row) for row in rows]

    def agents(self) -> list[AgentRecord]:
        """Every known agent with its latest report."""
        return self._read_agents()

    def changed_agents(self, known: Mapping[str, int]) -> list[AgentRecord]:
        """Nothing unless the engine is shared: no other collector writes this database."""
        return []

    def _record(self, row: Sequence[Any]) -> AgentRecord:
        values = dict(zip(self._columns, row))
        blob = values["latest_report"]
        return AgentRecord(
            host=values["host"],
            department=values["department"],
            agent_version=values["agent_version"],
            os=values["os"],
            kernel=values["kernel"],
            interval_seconds=values["interval_seconds"],
            instance_id=values["instance_id"],
            first_seen=values["first_seen"],
            last_seen=values["last_seen"],
            max_sequence=values["max_sequence"],
            reports_stored=values["reports_stored"],
            reports_lost=values["reports_lost"],
            latest=pb.Report.FromString(bytes(blob)) if blob is not None else None,
            revision=values.get("revision", 0),
            clock_skew_seconds=values["clock_skew_seconds"],
        )

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
        jobs = [Job(batch) for batch in batches]
        with self._queue_lock:
            self._queue.extend(jobs)
        while not jobs[-1].done.is_set():
            with self._lock:
                if jobs[-1].done.is_set():
                    break
                with self._queue_lock:
                    queued, self._queue = self._queue, []
                try:
                    self._commit(queued)
                finally:
                    for job in queued:
                        job.done.set()
        # Queued together, so committed together: every job is done now.
        return [job.error or job.result or StoreError("not stored") for job in jobs]

    def _run_hooks(self, tx: Transaction, host: str, new: Sequence[pb.Report]) -> None:
        """Each hook on each newly stored report, writing through tx (inside the savepoint)."""
        for report in new:
            for hook in self._hooks:
                hook.on_stored(tx, host, report)


def _with_agent_steps(
    migrations: tuple[Migration, ...], agents: Migration, later: Migration
) -> tuple[Migration, ...]:
    """The agents table's later steps right after its first wherever that is given."""
    if agents not in migrations or later in migrations:
        return migrations
    at = migrations.index(agents) + 1
    return (*migrations[:at], later, *migrations[at:])
