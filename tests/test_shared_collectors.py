"""Two real collectors on one real PostgreSQL, with a real agent: failover loses nothing.

The agent lists both collectors; the first is killed with SIGKILL while
the agent drains a backlog into it; the agent goes on with the second at
once; every report is stored once, none is counted lost, and whichever
collector Prometheus scrapes, the host has one last_seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcguard.collector.store import PostgresDatabase
from tests.postgres import Cluster
from tests.promstack import Prometheus
from tests.support import Agent, Collector, metric, run_cli, wait_for
from tests.trust_support import TlsCollector


def _store_table(database: PostgresDatabase, password_file: Path) -> str:
    return (
        f'[store]\nengine = "postgresql"\ndsn = "{database.dsn}"\n'
        f'password_file = "{password_file}"\n'
    )


@pytest.fixture
def shared(pg_cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Cluster, PostgresDatabase, Path]]:
    """A fresh database and a password file the collectors (run as root) can read."""
    password = tmp_path / "db-password"
    password.write_text(Path(pg_cluster.password_file).read_text())
    password.chmod(0o600)
    yield pg_cluster, pg_cluster.database(), password


def _row(cluster: Cluster, database: PostgresDatabase, host: str) -> tuple[int, int, int]:
    rows = cluster.query(
        database,
        "SELECT reports_stored, reports_lost, max_sequence FROM agents WHERE host = %s",
        (host,),
    )
    return tuple(rows[0]) if rows else (0, 0, 0)  # type: ignore[return-value]


def test_a_wrong_password_or_database_is_one_line_and_exit_2(shared, tmp_path: Path):
    _, database, _ = shared
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    for name, dsn, password in [
        ("bad-password", database.dsn, wrong),
        ("no-server", "host=127.0.0.1 port=1 dbname=x user=dcguard", wrong),
    ]:
        collector = Collector(
            tmp_path / name, extra_config=_store_table(PostgresDatabase(dsn), password)
        )
        # serve, and check-config before it: the same one line, the same exit 2.
        for command in ("serve", "check-config"):
            result = run_cli("dcguard.collector", command, "--config", str(collector.config_path))
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, (command, result.stderr)
            assert "Traceback" not in result.stderr
            assert "cannot connect to PostgreSQL database" in lines[0], command
            assert "not-the-password" not in result.stderr


def test_check_config_connects_to_the_postgresql_store_and_changes_nothing(shared, tmp_path: Path):
    cluster, database, password = shared
    collector = Collector(tmp_path / "c", extra_config=_store_table(database, password))
    result = run_cli("dcguard.collector", "check-config", "--config", str(collector.config_path))
    assert result.returncode == 0, result.stderr
    assert f"store PostgreSQL database ({database.dsn})" in result.stdout
    assert Path(password).read_text().strip() not in result.stdout + result.stderr
    # Read only: no migration ran (serve would make the tables).
    assert cluster.query(database, "SELECT to_regclass('schema_migrations')") == [(None,)]


def test_kill_9_of_one_collector_mid_backlog_loses_nothing(shared, tmp_path: Path):
    cluster, database, password = shared
    store = _store_table(database, password)
    # The first collector takes at most 2 calls a second from the host, so the
    # backlog drains into it slowly enough to kill it halfway.
    # A host is up for 30 of its 100 ms intervals: 3 s, as a 15 s agent has 45 s, well
    # above the collectors' refresh (1 s) and Prometheus' scrape interval (1 s).
    up_window = "insecure = true\ndown_after_intervals = 30\n"
    first = Collector(
        tmp_path / "first",
        server_extra=up_window,
        extra_config=store + ("[limits]\nrate_limit_per_second = 2.0\nrate_limit_burst = 1\n"),
    )
    second = Collector(tmp_path / "second", server_extra=up_window, extra_config=store)
    agent = Agent(tmp_path / "agent", [], interval="100ms")
    prometheus: Prometheus | None = None
    try:
        for collector in (first, second):  # learn their ports, then stop them
            collector.start()
            assert collector.stop() == 0
        # A real Prometheus with the shipped rules scrapes both collectors as two targets.
        prometheus = Prometheus(
            tmp_path / "prometheus", [f"127.0.0.1:{c.metrics_port}" for c in (first, second)]
        )
        prometheus.start()
        agent = Agent(
            tmp_path / "agent",
            [first.grpc_address, second.grpc_address],
            interval="100ms",
            host="db01",
            extra_config="[spool]\nbatch_max_reports = 2\n",
        )
        agent.start()
        time.sleep(3)  # a backlog of ~30 reports, with no collector to take it
        first.start()
        second.start()
        wait_for(
            lambda: _row(cluster, database, "db01")[0] >= 4,
            timeout=30,
            message="the first collector to store part of the backlog",
        )
        first.kill()
        killed_at = _row(cluster, database, "db01")[2]
        last = json.loads(agent.cli("status", "--json").stdout)["last_sequence"]
        assert killed_at < last, "the backlog was not drained yet when the collector died"

        # The agent moves to the second collector at once, not after a backoff.
        moved = time.monotonic()
        wait_for(
            lambda: _row(cluster, database, "db01")[2] > killed_at + 2,
            timeout=10,
            message="delivery to go on through the second collector",
        )
        assert time.monotonic() - moved < 5

        first.start()  # back, but the agent stays with the collector that works
        wait_for(
            lambda: _row(cluster, database, "db01")[2] > last + 10,
            timeout=30,
            message="the backlog to drain and live reports to flow",
        )
        # The collector the agent left has the host up, with the other's last_seen:
        # no AgentDown for a server that reports fine through its peer.
        samples = first.metrics()
        assert metric(samples, "dcguard_agent_up", host="db01") == 1
        assert (
            time.time() - metric(samples, "dcguard_agent_last_seen_timestamp_seconds", host="db01")
            < 3
        )
        # What Prometheus sees: both collectors scraped, the host fresh on each, as
        # AgentDown's expression measures it, and no AgentReportsLost pending or firing.
        wait_for(
            lambda: (
                len(prometheus.query('dcguard_agent_last_seen_timestamp_seconds{host="db01"}')) == 2
            ),
            timeout=15,
            message="both collectors scraped again",
        )
        # Longer than the age a copy loaded at the restart would have by now.
        time.sleep(4)
        assert (
            prometheus.query('time() - dcguard_agent_last_seen_timestamp_seconds{host="db01"} > 3')
            == []
        ), "a stale copy of the host on a collector"
        assert prometheus.query('ALERTS{alertname=~"AgentReportsLost|AgentDown"}') == []
        assert (
            prometheus.query('max_over_time(dcguard_agent_reports_lost_total{host="db01"}[5m]) > 0')
            == []
        )
        assert agent.stop() == 0
        status = json.loads(agent.cli("status", "--json").stdout)

        stored, lost, max_sequence = _row(cluster, database, "db01")
        assert lost == 0
        assert stored == max_sequence, "each sequence 1..max stored exactly once"
        assert max_sequence == status["acked_sequence"]

        time.sleep(1.2)  # past the collectors' refresh interval
        views = [c.metrics() for c in (first, second)]
        for samples in views:
            assert metric(samples, "dcguard_agent_reports_lost_total", host="db01") == 0
            assert metric(samples, "dcguard_agent_reports_stored_total", host="db01") == stored
            assert metric(samples, "dcguard_collector_store_up") == 1
        seen = {metric(s, "dcguard_agent_last_seen_timestamp_seconds", host="db01") for s in views}
        assert len(seen) == 1, f"one truth per host, got last_seen {seen}"
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=first.metrics_text(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        agent.stop()
        for collector in (first, second):
            collector.stop()
        if prometheus is not None:
            prometheus.stop()


class PeerTlsCollector(TlsCollector):
    """A second mTLS collector of the set: the CA of the first (its [tls] dir), no `ca init`."""

    def __init__(
        self,
        workdir: Path,
        first: TlsCollector,
        tls_extra: str,
        extra_config: str,
        ingest_processes: int = 0,
    ) -> None:
        Collector.__init__(
            self,
            workdir,
            server_extra="insecure = false\n",
            ingest_processes=ingest_processes,
            extra_config=f'[tls]\nenroll_listen = "127.0.0.1:0"\n{tls_extra}\n{extra_config}',
        )
        self.fingerprint = first.fingerprint
        self.enroll_port = 0


def test_a_token_raced_on_two_collectors_enrolls_once_and_a_revocation_holds_on_both(
    shared, tmp_path: Path
):
    cluster, database, password = shared
    store = _store_table(database, password)
    tls = f'dir = "{tmp_path / "ca"}"'
    first = TlsCollector(tmp_path / "first", tls_extra=tls, extra_config=store)
    # The second serves agents from an ingest process: revocations are checked
    # there, in the shared database (its DSN and password passed on by the collector).
    second = PeerTlsCollector(tmp_path / "second", first, tls, store, ingest_processes=1)
    agents: list[Agent] = []
    try:
        first.start()
        second.start()
        token = first.token("testhost")
        agents = [
            Agent(tmp_path / f"agent{i}", [second.grpc_address, first.grpc_address], insecure=False)
            for i in range(2)
        ]
        racing = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dcguard.agent",
                    "enroll",
                    "--config",
                    str(a.config_path),
                    "--token",
                    token,
                    "--ca-fingerprint",
                    first.fingerprint,
                    "--address",
                    c.enroll_address,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for a, c in zip(agents, (first, second))
        ]
        outcomes = [(p.wait(60), p.communicate()[1]) for p in racing]
        assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
        winner = agents[[code for code, _ in outcomes].index(0)]
        loser_err = next(err for code, err in outcomes if code != 0)
        assert "already used" in loser_err and len(loser_err.strip().splitlines()) == 1

        winner.start()  # reports go to the second collector
        wait_for(
            lambda: _row(cluster, database, "testhost")[0] >= 2,
            timeout=30,
            message="reports over mTLS through the second collector",
        )
        revoked = first.cli("agents", "revoke", "testhost")  # through the first one's CLI
        assert revoked.returncode == 0, revoked.stderr
        wait_for(
            lambda: second.rejected("permission_denied") >= 1,
            timeout=15,
            message="the second collector to refuse the revoked certificate",
        )
        after = _row(cluster, database, "testhost")[0]
        wait_for(
            lambda: second.rejected("permission_denied") + first.rejected("permission_denied") >= 3,
            timeout=30,
            message="more refused calls",
        )
        assert _row(cluster, database, "testhost")[0] == after
    finally:
        for agent in agents:
            agent.stop()
        for collector in (first, second):
            collector.stop()


def test_a_database_that_goes_away_loses_nothing_and_says_so(tmp_path: Path):
    """A cluster of its own, crashed while an agent reports and started again."""
    from tests.postgres import running_cluster

    with running_cluster() as cluster:
        database = cluster.database()
        password = tmp_path / "pw"
        password.write_text(Path(cluster.password_file).read_text())
        collector = Collector(tmp_path / "c", extra_config=_store_table(database, password))
        agent = Agent(tmp_path / "agent", [], interval="100ms")
        try:
            collector.start()
            agent = Agent(
                tmp_path / "agent", [collector.grpc_address], interval="100ms", host="db01"
            )
            agent.start()
            wait_for(
                lambda: _row(cluster, database, "db01")[0] >= 5,
                timeout=30,
                message="reports stored",
            )
            cluster.crash()
            # Submit is refused (the agent keeps spooling); /metrics still answers, and says so.
            wait_for(
                lambda: metric(collector.metrics(), "dcguard_collector_store_up") == 0,
                timeout=15,
                message="the collector to report its store down",
            )
            assert (
                metric(collector.metrics(), "dcguard_agent_reports_stored_total", host="db01") >= 5
            )
            wait_for(
                lambda: "UNAVAILABLE" in agent.log(),
                timeout=15,
                message="the agent to be told UNAVAILABLE",
            )
            time.sleep(2)  # a backlog builds up meanwhile
            assert collector.running
            backlog = json.loads(agent.cli("status", "--json").stdout)["spool_reports"]
            assert backlog >= 10
            cluster.restart()
            last = json.loads(agent.cli("status", "--json").stdout)["last_sequence"]
            wait_for(
                lambda: _row(cluster, database, "db01")[2] >= last,
                timeout=60,
                message="the backlog to reach the database",
            )
            stored, lost, max_sequence = _row(cluster, database, "db01")
            assert lost == 0 and stored == max_sequence
            wait_for(
                lambda: metric(collector.metrics(), "dcguard_collector_store_up") == 1,
                timeout=15,
                message="the store to be up again",
            )
        finally:
            agent.stop()
            collector.stop()


def test_collectors_with_stores_of_their_own_count_nothing_lost_and_say_why(tmp_path: Path):
    """Not a supported setup (docs/operators-guide.md), but never silently wrong.

    Two collectors, each with its own SQLite file, in one agent's addresses:
    the agent moves from the first to the second, which lacks what the first
    stored. The agent tells it what was acknowledged: nothing is counted lost,
    and the collector counts (and logs) reports acknowledged elsewhere.
    """
    first, second = Collector(tmp_path / "first"), Collector(tmp_path / "second")
    agent = Agent(tmp_path / "agent", [], interval="100ms")
    try:
        first.start()
        second.start()
        agent = Agent(
            tmp_path / "agent",
            [first.grpc_address, second.grpc_address],
            interval="100ms",
            host="db01",
        )
        agent.start()
        wait_for(
            lambda: (
                (metric(first.metrics(), "dcguard_agent_reports_stored_total", host="db01") or 0)
                >= 10
            ),
            message="reports on the first",
        )
        first.kill()
        wait_for(
            lambda: (
                (metric(second.metrics(), "dcguard_agent_reports_stored_total", host="db01") or 0)
                >= 10
            ),
            message="reports on the second",
        )
        samples = second.metrics()
        assert metric(samples, "dcguard_agent_reports_lost_total", host="db01") == 0
        assert metric(samples, "dcguard_collector_reports_acknowledged_elsewhere_total") >= 10
        assert "acknowledged by a collector whose store this one does not share" in second.log()
    finally:
        agent.stop()
        first.stop()
        second.stop()


def test_events_from_two_collectors_reach_the_siem_once_and_forwarding_survives_a_kill(
    shared, tmp_path: Path
):
    """Both collectors forward to one SIEM: one sends (a claim in the database), each event once."""
    import threading

    from tests.postgres import stored_events
    from tests.security_helpers import FakeAgent, SyslogListener, failures

    _, database, password = shared
    listener = SyslogListener("tcp").start()
    forward = (
        f'[forward]\nretry_max = "1s"\n[forward.syslog]\n'
        f'address = "127.0.0.1:{listener.port}"\ntransport = "tcp"\n'
    )
    collectors = [
        Collector(
            tmp_path / name,
            extra_config=_store_table(database, password)
            + '[events]\nretention = "36500d"\n'
            + forward,
        )
        for name in ("first", "second")
    ]
    agents: list[FakeAgent] = []
    try:
        for collector in collectors:
            collector.start()
        agents = [FakeAgent(c.grpc_address, host=f"web0{i}") for i, c in enumerate(collectors)]
        now = time.time() - 600

        def attack(agent: FakeAgent, source: str) -> None:
            for round_ in range(10):  # both collectors store events at the same time
                agent.send(failures(source, now + round_ * 5, 3))

        threads = [
            threading.Thread(target=attack, args=(a, f"203.0.113.{i + 1}"))
            for i, a in enumerate(agents)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stored = sorted(int(str(r["id"])) for r in stored_events(database))
        assert len(stored) >= 60
        wait_for(
            lambda: len(listener.received()) >= len(stored),
            timeout=30,
            message="every event at the SIEM",
        )
        time.sleep(1)  # nothing more arrives: each event was sent once
        received = sorted(int(m.sd["id"]) for m in listener.received())
        assert received == stored

        collectors[0].kill()  # whoever forwarded, forwarding goes on
        agents[1].send(failures("198.51.100.7", now + 100, 4))
        stored = sorted(int(str(r["id"])) for r in stored_events(database))
        wait_for(
            lambda: len(listener.received()) >= len(stored),
            timeout=30,
            message="the new events at the SIEM after the kill",
        )
        received = sorted(int(m.sd["id"]) for m in listener.received())
        assert received == stored
    finally:
        for agent in agents:
            agent.close()
        for collector in collectors:
            collector.stop()
        listener.stop()


def test_a_certificate_issued_by_one_collector_renews_through_the_other(shared, tmp_path: Path):
    import datetime

    from dcguard.common.pki import load_certificate

    cluster, database, password = shared
    store = _store_table(database, password)
    tls = f'dir = "{tmp_path / "ca"}"\nclient_cert_lifetime = "6s"'
    first = TlsCollector(tmp_path / "first", tls_extra=tls, extra_config=store)
    second = PeerTlsCollector(tmp_path / "second", first, tls, store)
    agent = Agent(tmp_path / "agent", [], insecure=False)
    try:
        first.start()
        second.start()
        agent = Agent(tmp_path / "agent", [second.grpc_address], insecure=False)
        enrolled = run_cli(
            "dcguard.agent",
            "enroll",
            "--config",
            str(agent.config_path),
            "--token",
            first.token("testhost"),
            "--ca-fingerprint",
            first.fingerprint,
            "--address",
            first.enroll_address,
        )
        assert enrolled.returncode == 0, enrolled.stderr
        cert_file = agent.state_dir / "tls" / "agent.pem"
        issued = load_certificate(cert_file.read_bytes())
        agent.start()
        wait_for(
            lambda: load_certificate(cert_file.read_bytes()).serial_number != issued.serial_number,
            timeout=30,
            message="a certificate renewed",
        )
        wait_for(
            lambda: (
                datetime.datetime.now(datetime.timezone.utc)
                > issued.not_valid_after_utc + datetime.timedelta(seconds=2)
            ),
            timeout=30,
            message="the first certificate to expire",
        )
        before = _row(cluster, database, "testhost")[0]
        wait_for(
            lambda: _row(cluster, database, "testhost")[0] > before + 2,
            timeout=30,
            message="delivery through the second with the renewed certificate",
        )
        assert (
            metric(second.metrics(), "dcguard_collector_certificate_renewals_total", result="ok")
            >= 1
        )
    finally:
        agent.stop()
        for collector in (first, second):
            collector.stop()
