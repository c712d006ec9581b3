"""Several collectors on one PostgreSQL store: exactly once, one token spend, migrations once.

Each "collector" here is a store handle of its own (its own connection),
as each collector process has; the races are real threads on a real
server (the private cluster of tests/postgres.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from dcguard.collector.identity import PeerIdentity
from dcguard.collector.store import ApplyResult, PostgresDatabase, StoreError
from dcguard.collector.store.postgres import PostgresEvents, PostgresRegistry, PostgresStore
from dcguard.collector.trust.registry import EnrollmentRegistry, TokenError
from tests.postgres import Cluster
from tests.submit import agent_info, make_report


def _race(count: int, work: Callable[[int], object]) -> list[object]:
    """Run work(i) in count threads released at once; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        barrier.wait(10)
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results


def _stores(database: PostgresDatabase, count: int) -> list[PostgresStore]:
    stores = [PostgresStore(database) for _ in range(count)]
    for store in stores:
        store.open()
    return stores


def test_the_same_batch_on_two_collectors_at_once_is_stored_once(pg_cluster: Cluster):
    database = pg_cluster.database()
    stores = _stores(database, 2)
    try:
        identity = PeerIdentity("db01", "so-tu-phap")
        for start in range(1, 101, 5):  # 20 rounds of a 5-report batch sent to both
            batch = [make_report(s) for s in range(start, start + 5)]
            results = _race(
                2,
                lambda i, b=batch, t=1000.0 + start: stores[i].apply(
                    identity, agent_info(host="db01"), b, t
                ),
            )
            assert all(isinstance(r, ApplyResult) for r in results), results
            stored = sorted(r.stored for r in results)  # type: ignore[union-attr]
            assert stored == [0, 5], "one collector stores the batch, the other acks it"
            assert all(r.record.max_sequence == start + 4 for r in results)  # type: ignore[union-attr]
        [(stored_total, lost, max_sequence)] = pg_cluster.query(
            database, "SELECT reports_stored, reports_lost, max_sequence FROM agents"
        )
        assert (stored_total, lost, max_sequence) == (100, 0, 100)
    finally:
        for store in stores:
            store.close()


def test_batches_of_many_hosts_from_three_collectors_never_deadlock(pg_cluster: Cluster):
    """Group commits locking hosts in different orders would wait on each other in a circle."""
    database = pg_cluster.database()
    stores = _stores(database, 3)
    hosts = [f"h{i:02d}" for i in range(12)]
    try:

        def collector(i: int) -> int:
            applied = 0
            order = hosts if i % 2 == 0 else list(reversed(hosts))
            for sequence in range(1, 11):
                results = stores[i].apply_many([_job(host, sequence) for host in order])
                errors = [r for r in results if isinstance(r, StoreError)]
                assert not errors, errors
                applied += sum(r.stored for r in results)  # type: ignore[union-attr]
            return applied

        results = _race(3, collector)
        assert all(isinstance(r, int) for r in results), results
        assert sum(results) == 12 * 10  # type: ignore[arg-type]
        rows = pg_cluster.query(database, "SELECT reports_stored, reports_lost FROM agents")
        assert rows == [(10, 0)] * 12
    finally:
        for store in stores:
            store.close()


def _job(host: str, sequence: int):
    from dcguard.collector.store import StoreJob

    return StoreJob(
        PeerIdentity(host, "d"), agent_info(host=host), [make_report(sequence)], 1000.0 + sequence
    )


def test_collectors_starting_at_once_migrate_once(pg_cluster: Cluster):
    database = pg_cluster.database()
    stores = [PostgresStore(database) for _ in range(4)]
    try:
        results = _race(4, lambda i: stores[i].open())
        assert results == [None] * 4, results
        names = pg_cluster.query(
            database, "SELECT name, COUNT(*) FROM schema_migrations GROUP BY name ORDER BY name"
        )
        assert [n for n, _ in names] == [
            "agents-clock-skew-v1",
            "agents-v1",
            "enrollment-v1",
            "risk-fs-history-v1",
            "security-events-v1",
        ]
        assert all(count == 1 for _, count in names)
    finally:
        for store in stores:
            store.close()


def test_a_token_raced_on_four_collectors_enrolls_once(pg_cluster: Cluster):
    database = pg_cluster.database()
    store = PostgresStore(database)
    store.open()
    store.close()
    registries = [EnrollmentRegistry(database) for _ in range(4)]
    for registry in registries:
        registry.open()
    try:
        for _ in range(10):
            token = registries[0].create_token("db01", "so-tu-phap", 3600)
            results = _race(
                4, lambda i, t=token: registries[i].consume_token(t, "db01", "so-tu-phap")
            )
            granted = [r for r in results if not isinstance(r, Exception)]
            refused = [r for r in results if isinstance(r, TokenError)]
            assert len(granted) == 1 and len(refused) == 3, results
            assert {r.reason for r in refused} == {"token_used"}
    finally:
        for registry in registries:
            registry.close()


def test_a_revocation_through_one_collector_is_seen_by_another_at_once(pg_cluster: Cluster):
    database = pg_cluster.database()
    store = PostgresStore(database)
    store.open()
    store.close()
    one, other = PostgresRegistry(database), EnrollmentRegistry(database)
    one.open()
    other.open()
    try:
        revoking = EnrollmentRegistry(database)
        revoking.open()
        revoking.record_certificate(0xABC, "db01", "so-tu-phap", 2e9)
        assert other.certificate_status(0xABC) == "valid"
        assert other.certificate_status(0xDEF) == "unknown"
        assert revoking.revoke_host("db01") == 1
        assert other.certificate_status(0xABC) == "revoked"
        revoking.close()
    finally:
        one.close()
        other.close()


def test_a_forwarding_claim_lost_with_its_session_is_not_kept(pg_cluster: Cluster):
    """A forwarder whose database session died (and its lock with it) claims again, or not.

    Once another collector holds the destination, the first must not go on
    believing it still does: two forwarders would send each event twice.
    """
    database = pg_cluster.database()
    _stores(database, 1)[0].close()  # made and migrated
    first = PostgresEvents(database)
    second = PostgresEvents(database)
    try:
        assert first.claim_destination("siem") is True
        assert second.claim_destination("siem") is False
        # The first collector's session ends (a failover, an idle timeout): its lock goes.
        pg_cluster.query(
            database,
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        with pytest.raises(StoreError):
            first.newest_event_id()  # finds its connection gone
        assert second.claim_destination("siem") is True
        assert first.claim_destination("siem") is False
    finally:
        first.close()
        second.close()
