"""The report store's contract on both engines: group commit, a failing batch, migrations.

Every test taking `site` runs on a real SQLite file and on a real
PostgreSQL database (a private cluster, tests/postgres.py).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import grpc
import pytest

from dcguard.collector.events import StoredEvent
from dcguard.collector.exposition.families.registry import HostRenderer
from dcguard.collector.exposition.hosts import StateCache
from dcguard.collector.identity import PeerIdentity
from dcguard.collector.receive.admit import SubmitFront
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.selfmetrics import SelfMetrics
from dcguard.collector.settle.submit import CollectorService
from dcguard.collector.store import ReportHook, ReportStore, StoreError, Transaction
from dcguard.collector.store.postgres import PostgresStore
from dcguard.collector.store.postgres import schema as pg_schema
from dcguard.collector.store.sqlite import SqliteStore
from dcguard.collector.store.sqlite import schema as sqlite_schema
from dcguard.v1 import collector_pb2 as pb
from tests.postgres import Cluster
from tests.submit import agent_info, make_report
from tests.support import wait_for

Store = SqliteStore | PostgresStore


class SqliteSite:
    """A store's database as an SQLite file."""

    schema = sqlite_schema

    def __init__(self, path: Path) -> None:
        self.path = path

    def store(self, migrations=None, hooks: tuple[ReportHook, ...] = ()) -> Store:
        return SqliteStore(
            self.path, hooks=hooks, migrations=migrations or sqlite_schema.MIGRATIONS
        )

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        db = sqlite3.connect(self.path)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def tables(self) -> set[str]:
        return {str(r[0]) for r in self.rows("SELECT name FROM sqlite_master WHERE type='table'")}


class PostgresSite:
    """A store's database in the private PostgreSQL cluster."""

    schema = pg_schema

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.database = cluster.database()

    def store(self, migrations=None, hooks: tuple[ReportHook, ...] = ()) -> Store:
        return PostgresStore(
            self.database, hooks=hooks, migrations=migrations or pg_schema.MIGRATIONS
        )

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        return self.cluster.query(self.database, sql)

    def tables(self) -> set[str]:
        return {
            str(r[0])
            for r in self.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> SqliteSite | PostgresSite:
    if request.param == "sqlite":
        return SqliteSite(tmp_path / "c.db")
    return PostgresSite(request.getfixturevalue("pg_cluster"))


def _apply(store: ReportStore, host: str, *sequences: int):
    return store.apply(
        PeerIdentity(host, "dept"),
        agent_info(host=host),
        [make_report(s) for s in sequences],
        1000.0,
    )


def test_concurrent_batches_are_each_stored_exactly_once(site):
    store = site.store()
    store.open()
    errors: list[BaseException] = []

    def agent(host: str) -> None:
        try:
            for sequence in range(1, 26):
                assert _apply(store, host, sequence).record.max_sequence == sequence
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(f"h{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    store.close()

    reopened = site.store()
    reopened.open()
    records = {r.host: r for r in reopened.agents()}
    assert len(records) == 16
    assert all(r.reports_stored == 25 and r.reports_lost == 0 for r in records.values())
    reopened.close()


class FailFor:
    """A hook that fails for one host, as a buggy feature or a full disk would."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.seen: list[tuple[str, int]] = []

    def on_stored(self, tx: Transaction, host: str, report: pb.Report) -> None:
        if host == self.host:
            raise StoreError("disk I/O error")
        tx.insert_event(
            StoredEvent(
                id=0,
                host=host,
                department="",
                time=1000.0,
                received_at=1000.0,
                type="seen",
                severity="info",
                raw=str(report.sequence),
            )
        )


def test_a_failing_batch_does_not_undo_the_others_in_its_group(site):
    store = site.store(
        migrations=(site.schema.AGENTS_SCHEMA, site.schema.SECURITY_SCHEMA), hooks=(FailFor("bad"),)
    )
    store.open()
    outcome: dict[str, object] = {}

    def agent(host: str) -> None:
        try:
            outcome[host] = _apply(store, host, 1, 2)
        except StoreError as exc:
            outcome[host] = exc

    threads = [threading.Thread(target=agent, args=(h,)) for h in ("good1", "bad", "good2")]
    # Hold the commit lock until all three are queued, so they share one transaction.
    with store._lock:
        for t in threads:
            t.start()
        wait_for(lambda: len(store._queue) == 3, timeout=10, message="three queued batches")
    for t in threads:
        t.join(30)
    assert isinstance(outcome["bad"], StoreError)
    assert {
        h: r.record.max_sequence
        for h, r in outcome.items()  # type: ignore[union-attr]
        if h != "bad"
    } == {"good1": 2, "good2": 2}
    hosts = {r.host for r in store.agents()}
    assert hosts == {"good1", "good2"}, "the failed batch must leave nothing behind"
    rows = site.rows("SELECT host, raw FROM security_events ORDER BY host, raw")
    assert rows == [("good1", "1"), ("good1", "2"), ("good2", "1"), ("good2", "2")]
    # The failed batch can be resent later and is then stored in full.
    store._hooks = ()  # the disk recovered
    assert _apply(store, "bad", 1, 2).record.reports_stored == 2
    store.close()


def test_named_migrations_apply_once_and_survive_reopening(site):
    extra = ("extra-v1", ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (1)"))
    for _ in range(2):
        store = site.store(migrations=(site.schema.AGENTS_SCHEMA, extra))
        store.open()
        store.close()
    assert site.rows("SELECT COUNT(*) FROM extra") == [(1,)]
    names = [r[0] for r in site.rows("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == ["agents-clock-skew-v1", "agents-v1", "extra-v1"]


def test_a_broken_migration_leaves_the_database_as_it_was(site):
    broken = ("broken-v1", ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"))
    store = site.store(migrations=(site.schema.AGENTS_SCHEMA, broken))
    with pytest.raises(StoreError):
        store.open()
    store.close()
    tables = site.tables()
    assert "half" not in tables and "agents" in tables


def test_a_readonly_store_on_a_missing_database_says_so(tmp_path: Path):
    with pytest.raises(StoreError, match="no collector database"):
        SqliteStore(tmp_path / "none.db", readonly=True).open()


def test_one_settle_of_many_admissions_answers_each_and_commits_them_together(site):
    """What an ingest loop hands over at once: the same host twice, a refusal, another host."""

    class Peer:
        def peer(self) -> str:
            return "ipv4:127.0.0.1:5000"

    store = site.store()
    store.open()
    metrics = SelfMetrics()
    back = CollectorService(store, StateCache(HostRenderer([])), metrics)
    front = SubmitFront(Authenticator(insecure=True))

    def request(host: str, *sequences: int) -> bytes:
        return pb.SubmitRequest(
            agent=agent_info(host=host), reports=[make_report(s) for s in sequences]
        ).SerializeToString()

    admissions = [
        front.admit(request("a", 1, 2), Peer()),  # type: ignore[arg-type]
        front.admit(request("a", 1, 2, 3), Peer()),  # type: ignore[arg-type]
        front.admit(b"\xff garbage", Peer()),  # type: ignore[arg-type]
        front.admit(request("b", 7), Peer()),
    ]  # type: ignore[arg-type]
    # As they cross between processes: the parsed request stays behind.
    replies = back.settle([a.for_transfer() for a in admissions])
    acks = [
        pb.SubmitResponse.FromString(r.payload).acked_sequence if r.code is None else r.code
        for r in replies
    ]
    assert acks == [2, 3, grpc.StatusCode.INVALID_ARGUMENT, 7]
    counts = {
        row[0]: row[1:]
        for row in site.rows("SELECT host, max_sequence, reports_stored, reports_lost FROM agents")
    }
    assert counts == {"a": (3, 3, 0), "b": (7, 1, 6)}
    sample = metrics.registry.get_sample_value
    assert sample("dcguard_collector_reports_duplicate_total") == 2  # a's 1 and 2 again
    assert sample("dcguard_collector_reports_rejected_total", {"reason": "malformed"}) == 1
    assert sample("dcguard_collector_reports_received_total") == 2 + 3 + 0 + 1
    store.close()


def test_what_the_agent_says_was_acknowledged_elsewhere_is_not_lost(site):
    """Sequences 3-7 went to a collector with another store, 8 and 9 never arrived."""
    from dcguard.collector.store import StoreJob

    store = site.store()
    store.open()
    try:
        _apply(store, "db01", 1, 2)
        [result] = store.apply_many(
            [
                StoreJob(
                    PeerIdentity("db01", "dept"),
                    agent_info(host="db01"),
                    [make_report(10)],
                    1001.0,
                    acked_sequence=7,
                )
            ]
        )
        assert not isinstance(result, StoreError)
        assert (result.acknowledged_elsewhere, result.record.reports_lost) == (5, 2)
        assert result.record.reports_stored == 3 and result.record.max_sequence == 10
        # An agent from before acked_sequence (0) is counted as it always was.
        [old] = store.apply_many(
            [
                StoreJob(
                    PeerIdentity("db01", "dept"), agent_info(host="db01"), [make_report(12)], 1002.0
                )
            ]
        )
        assert not isinstance(old, StoreError)
        assert (old.acknowledged_elsewhere, old.record.reports_lost) == (0, 3)
    finally:
        store.close()


class Poisoned:
    """A hook failing as a report's content would (ValueError) or as the database would."""

    def __init__(self, transient: Exception) -> None:
        self.transient = transient

    def on_stored(self, tx: Transaction, host: str, report: pb.Report) -> None:
        for fs in report.filesystems:
            if fs.mountpoint == "/poison":
                raise ValueError("cannot handle /poison")
            if fs.mountpoint == "/busy":
                raise self.transient


def _engine_busy(site: SqliteSite | PostgresSite) -> Exception:
    """The engine's own error for a database that is busy or gone for a moment."""
    if isinstance(site, SqliteSite):
        return sqlite3.OperationalError("database is locked")
    import psycopg

    return psycopg.OperationalError("server closed the connection unexpectedly")


def test_refused_for_its_content_for_good_for_the_database_for_now(site):
    """Both engines: a poison report and an implausible sequence are INVALID_ARGUMENT
    (never resent), a database failure UNAVAILABLE (resent); the host carries on."""
    from dcguard.collector.store.batch import MAX_SEQUENCE_JUMP

    class Peer:
        def peer(self) -> str:
            return "ipv4:127.0.0.1:5000"

    store = site.store(hooks=(Poisoned(_engine_busy(site)),))
    store.open()
    metrics = SelfMetrics()
    back = CollectorService(store, StateCache(HostRenderer([])), metrics)
    front = SubmitFront(Authenticator(insecure=True))

    def settle(sequence: int, mountpoint: str | None = None) -> grpc.StatusCode | int:
        report = make_report(sequence)
        if mountpoint:
            report.filesystems.add(mountpoint=mountpoint)
        data = pb.SubmitRequest(agent=agent_info(host="db01"), reports=[report]).SerializeToString()
        reply = back.settle([front.admit(data, Peer())])[0]  # type: ignore[arg-type]
        if reply.code is not None:
            return reply.code
        return int(pb.SubmitResponse.FromString(reply.payload).acked_sequence)

    try:
        assert settle(1) == 1
        assert settle(2, "/poison") == grpc.StatusCode.INVALID_ARGUMENT
        assert settle(2 + MAX_SEQUENCE_JUMP) == grpc.StatusCode.INVALID_ARGUMENT
        assert settle(3, "/busy") == grpc.StatusCode.UNAVAILABLE
        assert settle(3) == 3
        sample = metrics.registry.get_sample_value
        assert sample("dcguard_collector_reports_rejected_total", {"reason": "unstorable"}) == 1
        assert sample("dcguard_collector_reports_rejected_total", {"reason": "invalid_report"}) == 1
        assert sample("dcguard_collector_store_up") == 1
        assert site.rows("SELECT max_sequence, reports_stored, reports_lost FROM agents") == [
            (3, 2, 1)
        ]
    finally:
        store.close()


def test_a_hosts_clock_skew_is_kept_and_read_back(site):
    """Both engines: the newest report's skew is stored; a batch of duplicates keeps it."""
    from dcguard.collector.store import StoreJob

    def job(sequence: int, skew: float) -> StoreJob:
        return StoreJob(
            PeerIdentity("db01", "dept"),
            agent_info(host="db01"),
            [make_report(sequence)],
            1000.0 + sequence,
            clock_skew=skew,
        )

    store = site.store()
    store.open()
    try:
        [first] = store.apply_many([job(1, 7200.0)])
        assert not isinstance(first, StoreError)
        assert first.record.clock_skew_seconds == 7200.0
        [again] = store.apply_many([job(1, -3.0)])  # a duplicate: nothing new, skew kept
        assert not isinstance(again, StoreError)
        assert again.duplicates == 1 and again.record.clock_skew_seconds == 7200.0
    finally:
        store.close()
    reopened = site.store()
    reopened.open()
    try:
        assert [r.clock_skew_seconds for r in reopened.agents()] == [7200.0]
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("SerializationFailure", True),
        ("DeadlockDetected", True),
        ("AdminShutdown", True),
        ("ReadOnlySqlTransaction", True),
        ("DiskFull", True),
        ("NumericValueOutOfRange", False),
        ("UniqueViolation", False),
        ("InvalidTextRepresentation", False),
    ],
)
def test_postgresql_errors_are_transient_only_for_the_database_or_connection(
    error: str, transient: bool
):
    import psycopg
    from psycopg import errors

    from dcguard.collector.store.postgres.connection import is_transient

    assert is_transient(getattr(errors, error)("x")) is transient
    assert is_transient(psycopg.OperationalError("connection lost"))
    assert is_transient(psycopg.InterfaceError("the connection is closed"))


def test_a_readonly_reader_of_a_postgresql_store_before_the_skew_migration(pg_cluster: Cluster):
    """The CLI reading a database no collector of this version has migrated yet (as SQLite's)."""
    import psycopg

    database = pg_cluster.database()
    with psycopg.connect(database.dsn, password=database.password, autocommit=True) as db:
        for statement in pg_schema.AGENTS_SCHEMA[1]:
            db.execute(statement)
        db.execute(
            "INSERT INTO agents (host, department, first_seen, last_seen) "
            "VALUES ('db01', 'dept', 1, 2)"
        )
    reader = PostgresStore(database, readonly=True)
    reader.open()
    try:
        [record] = reader.agents()
        assert (record.host, record.clock_skew_seconds) == ("db01", 0.0)
    finally:
        reader.close()
