"""Storage and backup sources inside a real `dcguard-agent run`, delivering to a real collector."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

from dcguard.agent.cycle.report_builder import SourceErrors, build_report
from dcguard.v1 import collector_pb2 as pb
from tests.storage_helpers import FIXTURES, FakeDisks, make_source
from tests.support import metric, wait_for


def latest_report(collector: Any, host: str) -> pb.Report | None:
    database = Path(collector.data_dir) / "collector.db"
    with contextlib.closing(
        sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    ) as db:
        row = db.execute("SELECT latest_report FROM agents WHERE host = ?", (host,)).fetchone()
    return pb.Report.FromString(row[0]) if row and row[0] else None


def test_agent_delivers_arrays_errors_backups_and_a_pushed_run(
    tmp_path: Path, collector: Any, make_agent: Any
) -> None:
    mdstat = FIXTURES / "mdstat-raid1-degraded-_U-recovering-with-F-lab.txt"
    kern = tmp_path / "kern.log"
    kern.write_text("[ 1.0] I/O error, dev sdb, sector 8 op 0x0:(READ) flags 0x0\n")
    agent = make_agent(
        [collector.grpc_address],
        extra_config=f"""
        [storage]
        mdstat = "{mdstat}"
        kernel_log = "{kern}"
        smartctl = "{tmp_path / "no-smartctl"}"
        [[backup]]
        name = "pg"
        kind = "push"
        rpo = "26h"
        """,
    )
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
        s.error for s in latest_report(collector, "testhost").sources if s.name == "smart"
    )
    # Many cycles later the missing smartctl was logged once by the SMART thread and
    # once by the report loop, not once per cycle.
    assert agent.log().count("no-smartctl not found") == 2


def test_a_source_that_stays_broken_is_logged_once(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    source = make_source(
        "io_errors", {"storage": {"kernel_log": str(tmp_path / "none")}}, tmp_path / "state"
    )
    errors = SourceErrors()  # the long-running loop's memory of failures
    for _ in range(5):
        report = build_report((source,), sequence=1, errors=errors)
        assert not report.sources[0].success
    assert caplog.text.count("source io_errors failed") == 1
    (tmp_path / "none").write_text("")
    build_report((source,), sequence=2, errors=errors)
    assert "source io_errors works again" in caplog.text


def test_disks_asleep_since_the_agent_started_are_told_from_unreadable_ones(
    tmp_path: Path, collector: Any, make_agent: Any
) -> None:
    """Recorded smartctl answers (no sleeping disk can exist here) through a real agent run.

    sdc and sdd were asleep before the agent's first read: 7.5's JSON with power_mode, and
    7.3's plain text "Device is in STANDBY mode, exit(2)". sde answers garbage.
    """
    (tmp_path / "disks").mkdir()
    disks = FakeDisks(tmp_path / "disks")
    disks.set("/dev/sdc", "smartctl-sata-STANDBY-nocheck-standby-v7.5.json")
    disks.set("/dev/sdd", "smartctl-STANDBY-text-output-exit2-v7.3.txt", exit_code=2)
    disks.set("/dev/sde", "smartctl-sata-hdd-healthy-wd181kryz-v7.3.json", exit_code=2, cut=40)
    agent = make_agent(
        [collector.grpc_address],
        extra_config=f"""
        [sources]
        io_errors = false
        auth_log = false
        fim = false
        ports = false
        [storage]
        smartctl = "{disks.script}"
        """,
    )
    agent.start()

    def all_disks_on_metrics() -> dict[Any, float] | None:
        samples = collector.metrics()
        found = metric(samples, "dcguard_disk_smart_available", host="testhost", device="/dev/sde")
        return samples if found is not None else None

    samples = wait_for(
        all_disks_on_metrics, timeout=30, interval=0.2, message="the disks on /metrics"
    )
    for device, asleep in (("/dev/sdc", 1), ("/dev/sdd", 1), ("/dev/sde", 0)):
        labels = {"host": "testhost", "department": "test-dept", "device": device}
        assert metric(samples, "dcguard_disk_smart_available", **labels) == 0
        assert metric(samples, "dcguard_disk_standby", **labels) == asleep, device
    # Asleep is not failing: no disk reason.
    for reason in ("disk_smart_failing", "disk_smart_degrading"):
        assert not metric(samples, "dcguard_data_loss_risk", host="testhost", reason=reason)
    risk = collector.cli("risk", "--json")
    assert risk.returncode == 0, risk.stderr
    assert "disk_smart" not in risk.stdout


def test_the_first_report_already_says_which_background_sources_fail(
    tmp_path: Path, collector: Any, make_agent: Any
) -> None:
    """smartctl and journalctl are missing: the very first report says so, as later ones do.

    The interval is an hour, so the one report the collector holds is the first.
    """
    agent = make_agent(
        [collector.grpc_address],
        interval="1h",
        extra_config=f"""
        [storage]
        smartctl = "{tmp_path / "no-smartctl"}"
        kernel_log = "journal"
        journalctl = "{tmp_path / "no-journalctl"}"
        """,
    )
    agent.start()

    def first_report_stored() -> Any:
        samples = collector.metrics()
        stored = metric(samples, "dcguard_agent_reports_stored_total", host="testhost")
        return samples if stored else None

    samples = wait_for(first_report_stored, timeout=30, message="the first report")
    assert metric(samples, "dcguard_agent_reports_stored_total", host="testhost") == 1
    assert metric(samples, "dcguard_agent_source_success", host="testhost", source="smart") == 0
    assert metric(samples, "dcguard_agent_source_success", host="testhost", source="io_errors") == 0
    assert metric(samples, "dcguard_agent_source_success", host="testhost", source="host") == 1
    report = latest_report(collector, "testhost")
    assert report is not None
    errors = {s.name: s.error for s in report.sources}
    assert "no-smartctl not found" in errors["smart"]
    assert "no-journalctl not found" in errors["io_errors"]
