"""Storage and backup sources inside a real `dcguard-agent run`, delivering to a real collector."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

from dcguard.agent.runner import build_report
from dcguard.v1 import collector_pb2 as pb
from tests.storage_helpers import FIXTURES, make_source
from tests.support import metric, wait_for


def latest_report(collector: Any, host: str) -> pb.Report | None:
    database = Path(collector.data_dir) / "collector.db"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                            timeout=10)) as db:
        row = db.execute("SELECT latest_report FROM agents WHERE host = ?", (host,)).fetchone()
    return pb.Report.FromString(row[0]) if row and row[0] else None


def test_agent_delivers_arrays_errors_backups_and_a_pushed_run(
        tmp_path: Path, collector: Any, make_agent: Any) -> None:
    mdstat = FIXTURES / "mdstat-raid1-degraded-_U-recovering-with-F-lab.txt"
    kern = tmp_path / "kern.log"
    kern.write_text("[ 1.0] I/O error, dev sdb, sector 8 op 0x0:(READ) flags 0x0\n")
    agent = make_agent([collector.grpc_address], extra_config=f"""
        [storage]
        mdstat = "{mdstat}"
        kernel_log = "{kern}"
        smartctl = "{tmp_path / 'no-smartctl'}"
        [[backup]]
        name = "pg"
        kind = "push"
        rpo = "26h"
        """)
    agent.start()

    def degraded_array_arrived() -> pb.Report | None:
        report = latest_report(collector, "testhost")
        return report if report is not None and report.raid_arrays else None

    report = wait_for(degraded_array_arrived, timeout=30, message="a report with arrays")
    assert report.raid_arrays[0].degraded and report.raid_arrays[0].sync_action == "recovery"
    assert [(e.device, e.errors_total) for e in report.io_errors] == [("sdb", 1)]
    smart = next(s for s in report.sources if s.name == "smart")
    assert smart.success or "not found" in smart.error

    done = agent.cli("backup-report", "--job", "pg", "--status", "success", "--bytes", "123")
    assert done.returncode == 0, done.stderr

    def pushed_run_arrived() -> pb.Backup | None:
        latest = latest_report(collector, "testhost")
        for backup in latest.backups if latest else []:
            if backup.job == "pg" and backup.last_run_success:
                return backup
        return None

    backup = wait_for(pushed_run_arrived, timeout=30, message="the pushed run in a report")
    assert backup.size_bytes == 123
    assert "no-smartctl not found" in next(
        s.error for s in latest_report(collector, "testhost").sources if s.name == "smart")
    # Many cycles later the missing smartctl was logged once by the SMART thread and
    # once by the report loop, not once per cycle.
    assert agent.log().count("no-smartctl not found") == 2


def test_a_source_that_stays_broken_is_logged_once(tmp_path: Path,
                                                   caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    source = make_source("io_errors", {"storage": {"kernel_log": str(tmp_path / "none")}},
                         tmp_path / "state")
    for _ in range(5):
        report = build_report((source,), sequence=1)
        assert not report.sources[0].success
    assert caplog.text.count("source io_errors failed") == 1
    (tmp_path / "none").write_text("")
    build_report((source,), sequence=2)
    assert "source io_errors works again" in caplog.text


def test_the_first_report_already_says_which_background_sources_fail(
        tmp_path: Path, collector: Any, make_agent: Any) -> None:
    """smartctl and journalctl are missing: the very first report says so, as later ones do.

    The interval is an hour, so the one report the collector holds is the first.
    """
    agent = make_agent([collector.grpc_address], interval="1h", extra_config=f"""
        [storage]
        smartctl = "{tmp_path / 'no-smartctl'}"
        kernel_log = "journal"
        journalctl = "{tmp_path / 'no-journalctl'}"
        """)
    agent.start()

    def first_report_stored() -> Any:
        samples = collector.metrics()
        stored = metric(samples, "dcguard_agent_reports_stored_total", host="testhost")
        return samples if stored else None

    samples = wait_for(first_report_stored, timeout=30, message="the first report")
    assert metric(samples, "dcguard_agent_reports_stored_total", host="testhost") == 1
    assert metric(samples, "dcguard_agent_source_success", host="testhost", source="smart") == 0
    assert metric(samples, "dcguard_agent_source_success", host="testhost",
                  source="io_errors") == 0
    assert metric(samples, "dcguard_agent_source_success", host="testhost", source="host") == 1
    report = latest_report(collector, "testhost")
    assert report is not None
    errors = {s.name: s.error for s in report.sources}
    assert "no-smartctl not found" in errors["smart"]
    assert "no-journalctl not found" in errors["io_errors"]
