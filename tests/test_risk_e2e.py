"""The risk engine end to end: reports over gRPC into a real collector, reasons out on
/metrics and in `dcguard-collector risk` / `agents`, as an operator reads them."""

from __future__ import annotations

import json
import time

import pytest

from tests.storage_reports import (
    FAILING_HDS,
    GIB,
    Submitter,
    ata_disk,
    backup,
    fs,
    raid,
    report,
)
from tests.support import Collector, metric, run_cli, wait_for

HOUR = 3600.0
RISK_CONFIG = """
[risk.host.web01.weights]
filesystem_almost_full = 35
[risk.department.lab]
almost_full_avail_ratio = 0.5
"""


@pytest.fixture
def risky(tmp_path):
    """A collector with [risk] overrides, and senders for three hosts."""
    process = Collector(tmp_path / "collector", extra_config=RISK_CONFIG)
    process.start()
    senders: list[Submitter] = []

    def sender(host: str, department: str = "so-tu-phap", interval: float = 15.0) -> Submitter:
        s = Submitter(process.grpc_address, host, department, interval)
        senders.append(s)
        return s

    yield process, sender
    for s in senders:
        s.close()
    process.stop()


def _reasons(samples, host: str) -> set[str]:
    return {
        dict(labels)["reason"]
        for (name, labels), value in samples.items()
        if name == "dcguard_data_loss_risk" and ("host", host) in labels and value == 1
    }


def test_stale_backup_degraded_array_and_failing_disk_top_the_risk_list(risky):
    collector, sender = risky
    now = time.time()
    sender("db01").send(
        report(
            collected_at=now,
            filesystems=[fs("/", avail=50 * GIB)],
            backups=[
                backup(
                    "mysql-nightly", rpo=26 * HOUR, last_success=now - 3 * 86400, same_device=True
                )
            ],
            raid_arrays=[raid("md0", active=1, failed=("sdb1",))],
            disks=[
                ata_disk(
                    "/dev/sdc",
                    "Hitachi HDS721050DLE630",
                    "MSK423Y20S3HBC",
                    FAILING_HDS,
                    healthy=False,
                )
            ],
        )
    )
    sender("web01").send(
        report(
            collected_at=now,
            filesystems=[fs("/var", avail=4 * GIB)],
            backups=[backup("www", last_success=now - HOUR)],
        )
    )
    sender("ok01").send(
        report(
            collected_at=now,
            filesystems=[fs("/", avail=50 * GIB)],
            backups=[backup("etc", last_success=now - HOUR)],
        )
    )
    # Half the disk free counts as almost full in the lab department only.
    sender("lab01", "lab").send(report(collected_at=now, filesystems=[fs("/", avail=45 * GIB)]))

    samples = collector.metrics()
    # One subject, one finding: the stale job is not also "on the same disk", the failing
    # disk not also "degrading".
    assert _reasons(samples, "db01") == {"backup_stale", "raid_degraded", "disk_smart_failing"}
    assert metric(samples, "dcguard_data_loss_risk_score", host="db01") == 100
    assert _reasons(samples, "web01") == {"filesystem_almost_full"}
    assert metric(samples, "dcguard_data_loss_risk_score", host="web01") == 35  # host override
    assert _reasons(samples, "lab01") == {"filesystem_almost_full"}
    assert metric(samples, "dcguard_data_loss_risk_score", host="lab01") == 20
    assert _reasons(samples, "ok01") == set()
    assert metric(samples, "dcguard_data_loss_risk_score", host="ok01") == 0
    assert metric(samples, "dcguard_data_loss_risk", host="ok01", reason="backup_stale") == 0

    result = collector.cli("risk")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "db01 (so-tu-phap): risk 100/100"
    assert (
        "  backup_stale: backup 'mysql-nightly' last succeeded 3 days ago; objective is 26h"
        in lines
    )
    assert any(
        line.startswith(
            "  raid_degraded: RAID array md0 (raid1) is degraded: 1 of 2 disks active; failed: sdb1"
        )
        for line in lines
    )
    assert not any(
        line.startswith(("  backup_same_device:", "  disk_smart_degrading:")) for line in lines
    )
    assert any(
        line.startswith("  disk_smart_failing: disk /dev/sdc (Hitachi HDS721050DLE630")
        for line in lines
    )
    hosts = [line.split()[0] for line in lines if not line.startswith(" ")][:-1]
    assert hosts[:3] == ["db01", "web01", "lab01"]
    assert "ok01" not in result.stdout
    assert lines[-1] == "3 of 4 servers at risk"

    data = json.loads(collector.cli("risk", "--json").stdout)
    assert [h["host"] for h in data] == ["db01", "web01", "lab01"]
    db01 = data[0]
    assert db01["score"] == 100
    assert db01["reasons"][0]["reason"] == "disk_smart_failing"  # heaviest first
    stale = next(r for r in db01["reasons"] if r["reason"] == "backup_stale")
    assert stale == {
        "reason": "backup_stale",
        "subject": "backup 'mysql-nightly'",
        "weight": 40,
        "message": "backup 'mysql-nightly' last succeeded 3 days ago; objective is 26h",
    }
    every = json.loads(collector.cli("risk", "--json", "--all").stdout)
    assert every[-1] == {"host": "ok01", "department": "so-tu-phap", "score": 0, "reasons": []}

    agents = {a["host"]: a for a in json.loads(collector.cli("agents", "--json").stdout)}
    assert {h: a["risk_score"] for h, a in agents.items()} == {
        "db01": 100,
        "web01": 35,
        "lab01": 20,
        "ok01": 0,
    }
    table = collector.cli("agents").stdout.splitlines()
    assert table[0].split()[-1] == "RISK"
    assert next(line for line in table if line.startswith("db01")).split()[-1] == "100"


def test_filling_fast_from_six_hours_of_reports_survives_a_restart(risky):
    collector, sender = risky
    db02 = sender("db02")
    now = time.time()
    # Six hours of history, one report every 5 minutes. /srv loses 1 GiB/h and has 30 GiB
    # left: full in 30 h, past the 24 h horizon. /data loses 2 GiB/h: full in 15 h.
    reports = []
    for step in range(73):
        at = now - 6 * HOUR + step * 300
        hours = step / 12
        reports.append(
            report(
                collected_at=at,
                filesystems=[
                    fs("/srv", avail=int((36 - hours) * GIB)),
                    fs("/data", avail=int((42 - 2 * hours) * GIB)),
                ],
            )
        )
    db02.send(*reports)

    def filling() -> set[str]:
        return {
            dict(labels)["reason"]
            for (name, labels), value in collector.metrics().items()
            if name == "dcguard_data_loss_risk" and ("host", "db02") in labels and value
        }

    assert filling() == {"filesystem_filling_fast"}
    out = collector.cli("risk").stdout
    assert (
        "filesystem_filling_fast: filesystem /data (/dev/sda2) will be full in about 15h at "
        "the rate of the last 6h (30.0 GiB left, falling 2.0 GiB/h)"
    ) in out
    assert "/srv" not in out

    collector.stop()
    collector.start()
    assert filling() == {"filesystem_filling_fast"}
    assert "will be full in about 15h" in collector.cli("risk").stdout


def test_a_backup_turns_stale_at_scrape_time_without_a_new_report(risky):
    collector, sender = risky
    now = time.time()
    # The agent reports every 10 minutes, so it stays up while the 3 s objective passes.
    sender("db03", interval=600).send(
        report(collected_at=now, backups=[backup("quick", rpo=3, last_success=now)])
    )
    assert (
        metric(collector.metrics(), "dcguard_data_loss_risk", host="db03", reason="backup_stale")
        == 0
    )
    wait_for(
        lambda: (
            metric(
                collector.metrics(), "dcguard_data_loss_risk", host="db03", reason="backup_stale"
            )
            == 1
        ),
        timeout=20,
        message="backup_stale to appear at scrape time",
    )
    assert "backup 'quick' last succeeded" in collector.cli("risk").stdout


def test_a_silent_agent_is_a_risk_reason(risky):
    collector, sender = risky
    sender("db04", interval=0.2).send(report())
    wait_for(
        lambda: (
            metric(
                collector.metrics(), "dcguard_data_loss_risk", host="db04", reason="agent_silent"
            )
            == 1
        ),
        timeout=20,
        message="agent_silent after three missed intervals",
    )
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_up", host="db04") == 0
    assert metric(samples, "dcguard_data_loss_risk_score", host="db04") == 30
    assert "agent_silent: no report from the agent for" in collector.cli("risk").stdout


def test_risk_cli_empty_and_broken_setups_get_one_line(risky, tmp_path):
    collector, _ = risky
    result = collector.cli("risk")
    assert result.stdout.strip() == "no server at risk (0 known)"
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\ndata_dir = "/nonexistent/dcguard"\n[risk]\nsilent_after = 3\n')
    garbage = run_cli("dcguard.collector", "risk", "--config", str(bad))
    assert garbage.returncode == 2
    assert garbage.stderr.strip().count("\n") == 0
    assert "risk.silent_after: must be a duration string" in garbage.stderr
    bad.write_text('[server]\ndata_dir = "/nonexistent/dcguard"\n')
    missing = run_cli("dcguard.collector", "risk", "--config", str(bad))
    assert missing.returncode == 1
    assert "no collector database at /nonexistent/dcguard/collector.db" in missing.stderr
    assert "Traceback" not in missing.stderr
    flag = collector.cli("risk", "--worst")
    assert flag.returncode == 2
    assert flag.stderr.count("\n") == 1 and "--worst" in flag.stderr
    nofile = run_cli("dcguard.collector", "risk", "--config", str(tmp_path / "none.toml"))
    assert nofile.returncode == 2
    assert nofile.stderr.count("\n") == 1 and "cannot read config" in nofile.stderr
