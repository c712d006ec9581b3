"""The store owns the database: one importer of sqlite3, no SQL elsewhere, old databases served."""

from __future__ import annotations

import ast
import json
import re
import sqlite3
from pathlib import Path

import pytest

import dcguard.collector
from dcguard.v1 import collector_pb2 as pb
from tests.submit import agent_info, submit
from tests.support import Collector, metric, run_cli

PACKAGE = Path(dcguard.collector.__file__).parent
DUMP = Path(__file__).parent / "fixtures" / "collector-db-before-store.sql"
DRIVERS = ("sqlite3", "_sqlite3")
PG_DRIVERS = ("psycopg", "psycopg2", "psycopg_binary", "psycopg_c")
# Statements, not words: a docstring may say "select", a query says "SELECT x FROM".
SQL = re.compile(
    r"\b(SELECT\s[^\n]*\bFROM\b|INSERT\s+(OR\s+\w+\s+)?INTO\b|DELETE\s+FROM\b|"
    r"UPDATE\s+\w+\s+SET\b|CREATE\s+(TABLE|INDEX)\b|PRAGMA\s+\w+|BEGIN\s+IMMEDIATE|"
    r"SAVEPOINT\s+\w+)"
)


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, including by name through __import__ or import_module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Call):
            names.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return names


def test_exactly_one_module_of_the_collector_imports_sqlite3():
    importers = [
        name
        for name, tree in _modules().items()
        if any(imported.split(".")[0] in DRIVERS for imported in _imported(tree))
    ]
    assert importers == ["store/sqlite/connection.py"]


def test_exactly_one_module_of_the_collector_imports_psycopg():
    """The PostgreSQL driver is an optional extra: one importer, inside its engine."""
    importers = [
        name
        for name, tree in _modules().items()
        if any(imported.split(".")[0] in PG_DRIVERS for imported in _imported(tree))
    ]
    assert importers == ["store/postgres/connection.py"]


def test_the_shared_sql_names_no_engine():
    """store/sql/ is written once for both engines: each hands it a Dialect, it imports neither."""
    engines = ("dcguard.collector.store.sqlite", "dcguard.collector.store.postgres")
    shared = {name: tree for name, tree in _modules().items() if name.startswith("store/sql/")}
    assert "store/sql/events.py" in shared
    named = {
        name: sorted(i for i in _imported(tree) if i.startswith(engines))
        for name, tree in shared.items()
    }
    assert {name: found for name, found in named.items() if found} == {}


def test_no_sql_outside_the_store_and_no_engine_named_outside_it():
    written: dict[str, list[str]] = {}
    engine: list[str] = []
    for name, tree in _modules().items():
        if name.startswith("store/"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.search(node.value)
            ):
                written.setdefault(name, []).append(node.value.strip()[:60])
        if any(
            imported.startswith(
                ("dcguard.collector.store.sqlite", "dcguard.collector.store.postgres")
            )
            for imported in _imported(tree)
        ):
            engine.append(name)
    assert written == {}, "SQL outside collector/dcguard/collector/store/"
    assert engine == [], "only the store chooses the engine (store/__init__.py)"


def test_a_database_made_before_the_store_layer_is_served(tmp_path: Path):
    """A collector's SQLite file from the code before store/ (fixtures/make_...py) keeps working."""
    collector = Collector(tmp_path / "collector", extra_config='[events]\nretention = "36500d"\n')
    collector.data_dir.mkdir(mode=0o700)
    db = sqlite3.connect(collector.data_dir / "collector.db")
    try:
        db.executescript(DUMP.read_text())
    finally:
        db.close()

    # The CLIs read it read-only: agents, the filling-fast trend from the history, events.
    agents = collector.cli("agents", "--json")
    assert agents.returncode == 0, agents.stderr
    assert [(a["host"], a["department"]) for a in json.loads(agents.stdout)] == [
        ("db01", "so-tu-phap")
    ]
    risk = collector.cli("risk", "--json")
    assert risk.returncode == 0, risk.stderr
    reasons = {(r["reason"], r["subject"]) for r in json.loads(risk.stdout)[0]["reasons"]}
    assert ("filesystem_filling_fast", "/var") in reasons
    events = collector.cli("events", "--json")
    assert events.returncode == 0, events.stderr
    stored = json.loads(events.stdout)
    assert len(stored) == 9 and stored[-1]["type"] == "brute_force"
    assert {e["department"] for e in stored} == {"so-tu-phap"}

    collector.start()
    try:
        samples = collector.metrics()
        assert metric(samples, "dcguard_agent_reports_stored_total", host="db01") == 25
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
        assert (
            metric(
                samples, "dcguard_security_detections_total", host="db01", detection="brute_force"
            )
            == 1
        )
        assert (
            metric(samples, "dcguard_data_loss_risk", host="db01", reason="filesystem_filling_fast")
            == 1
        )
        # The agent goes on where it stopped: nothing counted lost, nothing stored twice.
        report = pb.Report(sequence=26)
        report.collected_at.GetCurrentTime()
        agent = agent_info(instance_id="instance-before-store")
        assert submit(collector.grpc_address, [report], agent).acked_sequence == 26
        samples = collector.metrics()
        assert metric(samples, "dcguard_agent_reports_stored_total", host="db01") == 26
        assert metric(samples, "dcguard_agent_reports_lost_total", host="db01") == 0
    finally:
        assert collector.stop() == 0, collector.log()[-3000:]

    # The registry: the certificate issued before is found, and revoked.
    revoked = collector.cli("agents", "revoke", "db01")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked 1 certificate(s) of db01" in revoked.stdout


@pytest.mark.parametrize("command", ["agents", "risk", "events"])
def test_a_database_the_listing_commands_cannot_read_is_one_line(
    tmp_path: Path, command: str
) -> None:
    """Garbage where the collector's database should be: one line naming it, no traceback."""
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "collector.db")
    db.execute("CREATE TABLE agents (host TEXT)")  # not the collector's table
    db.commit()
    db.close()
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[server]\ndata_dir = "{data}"\ninsecure = true\n'
        'grpc_listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n'
    )
    result = run_cli("dcguard.collector", command, "--config", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(data / "collector.db") in lines[0], result.stderr
