"""Moving a province's store: SQLite into PostgreSQL (migrate), and an online backup restored.

Real processes: the collector CLI, a serving collector, a real agent; a
real SQLite file and a real PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

from dcguard.collector.store.sqlite.copy import TABLES
from dcguard.v1 import collector_pb2 as pb
from tests.postgres import PASSWORD, Cluster
from tests.submit import agent_info, submit
from tests.support import Agent, Collector, metric, wait_for

DUMP = Path(__file__).parent / "fixtures" / "collector-db-before-store.sql"
RETENTION = '[events]\nretention = "36500d"\n'

# "agents: 1 row added", one line per table (the CLI runs in English under the tests).
ADDED = re.compile(r"^(\w+): (\d+) rows? added$", re.M)


def _sqlite_store(path: Path) -> dict[str, int]:
    """An SQLite store made by an earlier collector (the fixture); table -> rows."""
    db = sqlite3.connect(path)
    try:
        db.executescript(DUMP.read_text())
        present = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
            for t in TABLES
            if t in present
        }
    finally:
        db.close()


def test_migrate_copies_an_sqlite_store_into_postgresql_and_runs_again_safely(
    pg_cluster: Cluster, tmp_path: Path
):
    source = tmp_path / "old.db"
    counts = _sqlite_store(source)
    assert counts["agents"] == 1 and counts["security_events"] == 9
    database = pg_cluster.database()
    password = tmp_path / "pw"
    password.write_text(Path(pg_cluster.password_file).read_text())
    collector = Collector(
        tmp_path / "pg",
        extra_config=RETENTION
        + (
            f'[store]\nengine = "postgresql"\ndsn = "{database.dsn}"\n'
            f'password_file = "{password}"\n'
        ),
    )

    first = collector.cli("migrate", "--from-sqlite", str(source))
    assert first.returncode == 0, first.stderr
    added = {t: int(n) for t, n in ADDED.findall(first.stdout)}
    assert added == counts
    assert PASSWORD not in first.stdout + first.stderr
    again = collector.cli("migrate", "--from-sqlite", str(source))
    assert again.returncode == 0, again.stderr
    assert {t: int(n) for t, n in ADDED.findall(again.stdout)} == dict.fromkeys(counts, 0)
    for table, count in counts.items():
        assert pg_cluster.query(database, f"SELECT COUNT(*) FROM {table}") == [(count,)]  # noqa: S608

    # The CLIs and a collector on PostgreSQL serve what was moved.
    events = collector.cli("events", "--json")
    assert events.returncode == 0, events.stderr
    assert [e["type"] for e in json.loads(events.stdout)][-1] == "brute_force"
    risk = collector.cli("risk", "--json")
    assert risk.returncode == 0, risk.stderr
    assert ("filesystem_filling_fast", "/var") in {
        (r["reason"], r["subject"]) for r in json.loads(risk.stdout)[0]["reasons"]
    }
    collector.start()
    try:
        report = pb.Report(sequence=26)
        report.collected_at.GetCurrentTime()
        agent = agent_info(instance_id="instance-before-store")
        assert submit(collector.grpc_address, [report], agent).acked_sequence == 26
        samples = collector.metrics()
        assert metric(samples, "dcguard_agent_reports_stored_total", host="db01") == 26
        assert metric(samples, "dcguard_agent_reports_lost_total", host="db01") == 0
        assert (
            metric(
                samples,
                "dcguard_security_events_total",
                host="db01",
                type="ssh_login_failed",
                severity="medium",
            )
            == 8
        )
    finally:
        assert collector.stop() == 0, collector.log()[-3000:]
    revoked = collector.cli("agents", "revoke", "db01")  # the certificate came along
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout, revoked.stderr
    # New events get ids after the copied ones (forwarding cursors stay right).
    assert pg_cluster.query(
        database,
        "SELECT nextval(pg_get_serial_sequence("
        "'security_events', 'id')) > MAX(id) FROM security_events",
    ) == [(True,)]


def test_migrate_needs_a_postgresql_store_and_an_existing_source(tmp_path: Path):
    collector = Collector(tmp_path / "c")
    result = collector.cli("migrate", "--from-sqlite", str(tmp_path / "old.db"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "store.engine" in result.stderr and "Traceback" not in result.stderr


def test_an_online_backup_restored_accepts_its_agents_and_counts_nothing_lost(tmp_path: Path):
    collector = Collector(tmp_path / "collector")
    agent = Agent(tmp_path / "agent", [], interval="100ms")
    try:
        collector.start()
        agent = Agent(tmp_path / "agent", [collector.grpc_address], interval="100ms")
        agent.start()

        def stored() -> float:
            found = metric(
                collector.metrics(), "dcguard_agent_reports_stored_total", host="testhost"
            )
            return found or 0

        wait_for(lambda: stored() >= 10, message="reports stored")
        # While the agent reports: the copy is consistent and stands alone.
        busy = tmp_path / "busy.db"
        taken = collector.cli("backup", "--to", str(busy))
        assert taken.returncode == 0, taken.stderr
        copy = sqlite3.connect(busy)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ((stored_copy, lost_copy, max_copy),) = copy.execute(
            "SELECT reports_stored, reports_lost, max_sequence FROM agents"
        ).fetchall()
        copy.close()
        assert stored_copy == max_copy and lost_copy == 0
        refused = collector.cli("backup", "--to", str(busy))
        assert refused.returncode == 2 and "already exists" in refused.stderr

        # The machine is lost right after a backup: restore it and carry on.
        assert agent.stop() == 0
        backup = tmp_path / "backup.db"
        assert collector.cli("backup", "--to", str(backup)).returncode == 0
        collector.kill()
        shutil.rmtree(collector.data_dir)
        collector.data_dir.mkdir(mode=0o700)
        shutil.copyfile(backup, collector.data_dir / "collector.db")
        collector.start()
        agent.start()
        before = stored()
        wait_for(lambda: stored() >= before + 10, message="delivery to the restored collector")
        samples = collector.metrics()
        assert metric(samples, "dcguard_agent_reports_lost_total", host="testhost") == 0
    finally:
        agent.stop()
        collector.stop()
