"""Restore drills on real restic and borg repositories made per test (issue 17).

A drill restores a random sample of the newest snapshot into a private directory,
compares it with the unchanged source files, and always removes what it restored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources.backup import BackupSource
from dcguard.collector.risk.config import RiskConfig
from dcguard.collector.risk.engine import RiskEngine
from dcguard.v1 import collector_pb2 as pb
from tests.mounts import tmpfs
from tests.promstack import Prometheus
from tests.storage_helpers import backup_source, collect
from tests.storage_reports import Submitter, record, report
from tests.support import Agent, metric, run_cli, wait_for


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        argv, check=True, capture_output=True, timeout=120, env={**os.environ, **(env or {})}
    )


def check(source: BackupSource) -> dict[str, pb.Backup]:
    """One round of the background work (check, verification, drill), then the report."""
    try:
        collect(source)
        assert source.wait_rounds(1, timeout=180)
        return {b.job: b for b in collect(source).backups}
    finally:
        source.close()


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.glob("drill-*")) if directory.exists() else []


def statements(backup: pb.Backup) -> list[Any]:
    """The risk statements about this job (not the server-wide no_offsite_copy)."""
    now = time.time()
    return [
        s
        for s in RiskEngine(RiskConfig(), down_after_intervals=3)
        .assess(record(report(collected_at=now, backups=[backup]), last_seen=now), now)
        .statements
        if s.subject == f"backup '{backup.job}'"
    ]


def write_files(data: Path, count: int, size: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (data / f"file-{index:03}.bin").write_bytes(os.urandom(size))


def corrupt_in_place(path: Path) -> None:
    """Flip bytes in the middle of a file; its size stays the same."""
    content = bytearray(path.read_bytes())
    for offset in range(len(content) // 4, 3 * len(content) // 4, 101):
        content[offset] ^= 0xFF
    path.write_bytes(bytes(content))
    assert path.stat().st_size == len(content)


# -- restic --------------------------------------------------------------------------------


@pytest.fixture
def restic_repo(tmp_path: Path) -> dict[str, Any]:
    password = tmp_path / "restic-password"
    password.write_text("correct horse battery staple\n")
    repo = tmp_path / "restic-repo"
    env = {
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(password),
        "RESTIC_CACHE_DIR": str(tmp_path / "restic-cache"),
    }
    run("restic", "init", env=env)
    return {"repo": repo, "password": password, "env": env, "data": tmp_path / "data"}


def restic_job(repo: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "restic",
        "kind": "restic",
        "repository": str(repo["repo"]),
        "password_file": str(repo["password"]),
        "env": {"RESTIC_CACHE_DIR": repo["env"]["RESTIC_CACHE_DIR"]},
        **extra,
    }


def test_restic_drill_restores_a_matching_sample_and_leaves_nothing(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    write_files(restic_repo["data"], 3, 20000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    before = time.time()
    backup = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    drill = backup.restore_test
    assert backup.HasField("restore_test") and drill.success, drill.message
    assert (drill.files, drill.bytes, drill.skipped, drill.mismatch_count) == (3, 60000, 0, 0)
    assert before <= drill.time.seconds + 1 and drill.last_success == drill.time
    assert backup.restore_test_every_seconds == 7 * 86400
    assert leftovers(tmp_path / "state" / "restore-drill") == []
    assert [s.reason for s in statements(backup)] == []
    # Restarted: the drill is remembered (not forgotten, not re-run before it is due).
    again = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    assert again.restore_test == drill


def test_restic_pack_corrupted_in_place_is_unrestorable(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """The held-out case: same size, so the default structural `restic check` passes."""
    write_files(restic_repo["data"], 2, 30000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    data_pack = max(
        (p for p in (restic_repo["repo"] / "data").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    corrupt_in_place(data_pack)
    run("restic", "check", env=restic_repo["env"])  # the index-only check still says OK
    backup = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    drill = backup.restore_test
    assert backup.HasField("restore_test") and not drill.success
    assert drill.message.startswith("restic restore exited with 1: "), drill.message
    assert "ciphertext verification failed" in drill.message, drill.message
    assert not drill.HasField("last_success")
    assert leftovers(tmp_path / "state" / "restore-drill") == []
    (statement,) = statements(backup)
    assert statement.reason == "backup_unrestorable"
    assert re.match(
        r"backup 'restic' failed its restore test \d+ s ago: restic restore exited "
        r"with 1: .*ciphertext verification failed",
        statement.message,
    )


def test_a_source_changed_after_the_snapshot_is_skipped_not_a_mismatch(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    write_files(restic_repo["data"], 3, 10000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    (restic_repo["data"] / "file-001.bin").write_bytes(os.urandom(12345))
    backup = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    drill = backup.restore_test
    assert drill.success, drill.message
    assert (drill.files, drill.skipped, drill.mismatch_count) == (2, 1, 0)


def test_a_restored_file_unlike_its_unchanged_source_is_a_mismatch(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """Same size and mtime as in the snapshot, other content: SHA-256 tells them apart."""
    write_files(restic_repo["data"], 2, 10000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    victim = restic_repo["data"] / "file-000.bin"
    stat = victim.stat()
    victim.write_bytes(os.urandom(10000))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    drill = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"].restore_test
    assert not drill.success
    assert (drill.files, drill.mismatch_count) == (1, 1)
    assert list(drill.mismatches) == [
        f"{victim}: restored content differs from the unchanged source (SHA-256)"
    ]
    assert drill.message == f"1 of 2 restored files do not match: {drill.mismatches[0]}"


def test_the_byte_budget_holds_on_a_repository_larger_than_it(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """24 MB of data, a 16 MB filesystem to restore into: only the sample fits there."""
    write_files(restic_repo["data"], 24, 1024 * 1024)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    with tmpfs(tmp_path / "small") as small:
        job = restic_job(
            restic_repo,
            restore_test_dir=str(small / "drills"),
            restore_test_max_bytes="3MiB",
            restore_test_max_files=50,
        )
        drill = check(backup_source(tmp_path, job))["restic"].restore_test
        assert drill.success, drill.message
        assert drill.files == 3 and drill.bytes == 3 * 1024 * 1024
        assert leftovers(small / "drills") == []


def test_a_drill_refuses_to_start_without_room(tmp_path: Path, restic_repo: dict[str, Any]) -> None:
    write_files(restic_repo["data"], 16, 1024 * 1024)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    with tmpfs(tmp_path / "small") as small:
        job = restic_job(
            restic_repo, restore_test_dir=str(small / "drills"), restore_test_max_bytes="14MiB"
        )
        backup = check(backup_source(tmp_path, job))["restic"]
        # Postponed, not a verdict: no restore test is reported and nothing was written.
        assert not backup.HasField("restore_test")
        assert leftovers(small / "drills") == []
        assert backup.last_run_success


def test_drills_off_with_zero(tmp_path: Path, restic_repo: dict[str, Any]) -> None:
    write_files(restic_repo["data"], 1, 1000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    backup = check(backup_source(tmp_path, restic_job(restic_repo, restore_test_every="0")))[
        "restic"
    ]
    assert not backup.HasField("restore_test") and backup.restore_test_every_seconds == 0
    assert not (tmp_path / "state" / "restore-drill").exists()


# -- borg ----------------------------------------------------------------------------------


def test_borg_drill_passes_then_a_corrupt_segment_is_unrestorable(tmp_path: Path) -> None:
    env = {"BORG_PASSPHRASE": "borg secret", "BORG_BASE_DIR": str(tmp_path / "borg-base")}
    (tmp_path / "borg-passphrase").write_text("borg secret\n")
    repo = tmp_path / "borg-repo"
    write_files(tmp_path / "data", 3, 20000)
    run("borg", "init", "-e", "repokey", str(repo), env=env)
    run("borg", "create", f"{repo}::one", str(tmp_path / "data"), env=env)
    job = {
        "name": "borg",
        "kind": "borg",
        "repository": str(repo),
        "password_file": str(tmp_path / "borg-passphrase"),
        "env": {"BORG_BASE_DIR": env["BORG_BASE_DIR"]},
    }
    healthy = check(backup_source(tmp_path / "healthy", job))["borg"].restore_test
    assert healthy.success, healthy.message
    assert (healthy.files, healthy.bytes) == (3, 60000)
    segment = max(
        (p for p in (repo / "data").rglob("*") if p.is_file() and p.name.isdigit()),
        key=lambda p: p.stat().st_size,
    )
    corrupt_in_place(segment)
    backup = check(backup_source(tmp_path / "corrupt", job))["borg"]
    assert not backup.restore_test.success
    assert backup.restore_test.message.startswith("borg extract exited with "), (
        backup.restore_test.message
    )
    assert leftovers(tmp_path / "corrupt" / "state" / "restore-drill") == []
    assert "backup_unrestorable" in [s.reason for s in statements(backup)]


# -- the agent killed mid-drill ------------------------------------------------------------

SLOW_RESTIC = """#!/bin/sh
# restic, but a restore stays in its drill directory until killed (while {flag} exists).
restic "$@"
status=$?
if [ "$1" = restore ] && [ -e {flag} ]; then sleep 120; fi
exit $status
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kill_9_mid_drill_leaves_a_directory_the_next_start_removes(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    write_files(restic_repo["data"], 2, 5000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    flag = tmp_path / "slow"
    flag.touch()
    wrapper = tmp_path / "slow-restic"
    wrapper.write_text(SLOW_RESTIC.format(flag=flag))
    wrapper.chmod(0o755)
    agent = Agent(
        tmp_path / "agent",
        [f"127.0.0.1:{_closed_port()}"],
        extra_config=f"""
        [[backup]]
        name = "restic"
        kind = "restic"
        rpo = "1d"
        repository = "{restic_repo["repo"]}"
        password_file = "{restic_repo["password"]}"
        binary = "{wrapper}"
        env = {{ RESTIC_CACHE_DIR = "{restic_repo["env"]["RESTIC_CACHE_DIR"]}" }}
        """,
    )
    drills = agent.state_dir / "restore-drill"
    try:
        agent.start()
        (left,) = wait_for(
            lambda: [d for d in leftovers(drills) if any(d.rglob("*.bin"))],
            timeout=60,
            message="a drill to restore its sample",
        )
        assert agent.proc is not None
        os.killpg(agent.proc.pid, signal.SIGKILL)  # the agent and its restic, as systemd would
        agent.stop()
        assert left.exists()
        flag.unlink()
        agent.start()
        wait_for(lambda: not left.exists(), timeout=60, message="the leftover to be removed")
        wait_for(lambda: leftovers(drills) == [], timeout=60, message="the new drill to end")
    finally:
        if agent.proc is not None:
            os.killpg(agent.proc.pid, signal.SIGKILL)
            agent.stop()


HELD_RESTIC = """#!/bin/sh
# restic, but a restore stays in its drill directory while {flag} exists.
restic "$@"
status=$?
if [ "$1" = restore ]; then while [ -e {flag} ]; do sleep 0.1; done; fi
exit $status
"""


def test_a_drill_still_running_keeps_no_job_out_of_the_report(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """The agent's first report waits for the first round only so long (report_builder.prime):
    every job is checked before any drill starts, so a long drill leaves no job unreported."""
    write_files(restic_repo["data"], 2, 5000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    flag = tmp_path / "hold"
    flag.touch()
    wrapper = tmp_path / "held-restic"
    wrapper.write_text(HELD_RESTIC.format(flag=flag))
    wrapper.chmod(0o755)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "db.sql").write_text("-- a dump\n")
    source = backup_source(
        tmp_path,
        restic_job(restic_repo, binary=str(wrapper)),
        {"name": "dumps", "kind": "files", "path": str(dumps)},
    )
    drills = tmp_path / "state" / "restore-drill"
    try:
        collect(source)
        wait_for(
            lambda: [d for d in leftovers(drills) if any(d.rglob("*.bin"))],
            timeout=60,
            message="the drill to restore its sample",
        )
        assert not source.wait_rounds(1, timeout=0.1), "the round ended before the drill"
        assert sorted(b.job for b in collect(source).backups) == ["dumps", "restic"]
    finally:
        flag.unlink()
        assert source.wait_rounds(1, timeout=120)
        source.close()
    assert leftovers(drills) == []


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("restore_test_every", '"weekly"', "backup[0].restore_test_every"),
        ("restore_test_every", "7", "backup[0].restore_test_every: must be a duration string"),
        ("restore_test_max_bytes", '"lots"', "backup[0].restore_test_max_bytes: must be a size"),
        ("restore_test_max_bytes", "0", "backup[0].restore_test_max_bytes: must be at least 1"),
        ("restore_test_max_files", "0", "backup[0].restore_test_max_files: must be at least 1"),
        (
            "restore_test_max_files",
            "5000",
            "backup[0].restore_test_max_files: must be at most 1000",
        ),
        ("restore_test_max_files", '"many"', "backup[0].restore_test_max_files: must be"),
        ("restore_test_dir", '"drills"', "backup[0].restore_test_dir: must be an absolute path"),
    ],
)
def test_garbage_in_drill_keys_is_one_line_and_exit_2(
    tmp_path: Path, key: str, value: str, problem: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f"""[agent]
host = "db01"
department = "so-tu-phap"
state_dir = "{tmp_path / "state"}"
[collector]
addresses = ["127.0.0.1:4740"]
insecure = true
[[backup]]
name = "db"
kind = "restic"
rpo = "1d"
repository = "{tmp_path / "repo"}"
{key} = {value}
""")
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert problem in lines[0], lines[0]


def test_drill_keys_do_not_apply_to_files_jobs(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f"""[agent]
host = "db01"
department = "so-tu-phap"
state_dir = "{tmp_path / "state"}"
[collector]
addresses = ["127.0.0.1:4740"]
insecure = true
[[backup]]
name = "db"
kind = "files"
rpo = "1d"
path = "{tmp_path}"
restore_test_every = "1d"
""")
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2
    assert "backup[0].restore_test_every: does not apply to kind 'files'" in result.stderr


# -- what on-call sees -----------------------------------------------------------------------


def test_an_unrestorable_twin_is_named_by_risk_and_metrics_a_healthy_one_is_quiet(
    tmp_path: Path, restic_repo: dict[str, Any], collector: Any
) -> None:
    write_files(restic_repo["data"], 2, 30000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    healthy = check(backup_source(tmp_path / "healthy", restic_job(restic_repo)))["restic"]
    data_pack = max(
        (p for p in (restic_repo["repo"] / "data").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    corrupt_in_place(data_pack)
    broken = check(backup_source(tmp_path / "broken", restic_job(restic_repo)))["restic"]
    now = time.time()
    for host, backup in (("db01", broken), ("db02", healthy)):
        submitter = Submitter(collector.grpc_address, host)
        try:
            assert submitter.send(report(collected_at=now, backups=[backup])) == 1
        finally:
            submitter.close()
    samples = collector.metrics()
    for host, ok in (("db01", 0), ("db02", 1)):
        labels = {"host": host, "department": "so-tu-phap", "job": "restic"}
        assert metric(samples, "dcguard_backup_restore_test_success", **labels) == ok
        assert metric(samples, "dcguard_backup_restore_test_timestamp_seconds", **labels)
        assert (
            metric(samples, "dcguard_backup_restore_test_interval_seconds", **labels) == 7 * 86400
        )
        assert (
            metric(
                samples,
                "dcguard_data_loss_risk",
                reason="backup_unrestorable",
                host=host,
                department="so-tu-phap",
            )
            == 1 - ok
        )
    good = {"host": "db02", "department": "so-tu-phap", "job": "restic"}
    assert metric(samples, "dcguard_backup_restore_test_bytes", **good) == 60000
    assert metric(samples, "dcguard_backup_restore_test_files", **good) == 2
    assert (
        metric(samples, "dcguard_backup_restore_test_last_success_timestamp_seconds", **good)
        == healthy.restore_test.last_success.seconds + healthy.restore_test.last_success.nanos / 1e9
    )
    assert (
        metric(
            samples,
            "dcguard_backup_restore_test_last_success_timestamp_seconds",
            host="db01",
            job="restic",
        )
        is None
    )
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"],
            input=collector.metrics_text(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
            checked.stdout + checked.stderr
        )
    listing = collector.cli("risk")
    assert listing.returncode == 0, listing.stderr
    assert re.search(
        r"backup 'restic' failed its restore test \d+ s ago: restic restore "
        r"exited with 1: ",
        listing.stdout,
    ), listing.stdout
    reasons = {
        a["host"]: {r["reason"] for r in a["reasons"]}
        for a in json.loads(collector.cli("risk", "--json", "--all").stdout)
    }
    assert "backup_unrestorable" in reasons["db01"]
    assert "backup_unrestorable" not in reasons["db02"]
    # The page fires in a real Prometheus running dcguard's rules, for the broken twin only.
    prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{collector.metrics_port}"])
    prometheus.start()
    try:

        def unrestorable() -> set[str]:
            return {
                a["labels"]["host"]
                for a in prometheus.api("alerts")["alerts"]
                if a["labels"]["alertname"] == "BackupUnrestorable" and a["state"] == "firing"
            }

        wait_for(unrestorable, timeout=60, interval=0.5, message="BackupUnrestorable to fire")
        time.sleep(3)  # several more evaluations: the healthy twin must stay quiet
        assert unrestorable() == {"db01"}
    finally:
        prometheus.stop()


# -- verification that reads data ------------------------------------------------------------


def test_the_default_check_reads_data_and_finds_a_pack_corrupted_in_place(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """The held-out case: `restic check` without reading data passed this repository."""
    write_files(restic_repo["data"], 2, 30000)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    job = restic_job(restic_repo, verify_every="1h", restore_test_every="0")
    assert check(backup_source(tmp_path / "before", job))["restic"].last_verify_success
    data_pack = max(
        (p for p in (restic_repo["repo"] / "data").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    corrupt_in_place(data_pack)
    run("restic", "check", env=restic_repo["env"])  # index only: still "no errors"
    backup = check(backup_source(tmp_path / "after", job))["restic"]
    assert backup.HasField("last_verified") and not backup.last_verify_success
    assert re.fullmatch(
        r"restic check exited with 1: Pack ID does not match, want [0-9a-f]{64}, "
        r"got [0-9a-f]{64}; Fatal: repository contains errors",
        backup.message,
    )
    # verify_read_bytes = 0 asks for the index-only check, which misses it.
    shallow = check(backup_source(tmp_path / "shallow", dict(job, verify_read_bytes=0)))["restic"]
    assert shallow.last_verify_success


def test_verify_read_bytes_garbage_and_wrong_kind(tmp_path: Path) -> None:
    from dcguard.agent.sources.storage.backup_config import parse_backups
    from dcguard.common.config import ConfigError, Table

    def parse(**extra: Any) -> None:
        job = {"name": "a", "kind": "restic", "rpo": "1d", "repository": "/r", **extra}
        parse_backups(Table({"backup": [job]}, source="agent.toml"))

    with pytest.raises(ConfigError, match=r"backup\[0\]\.verify_read_bytes: must be a size"):
        parse(verify_read_bytes="lots")
    with pytest.raises(ConfigError, match=r"verify_read_bytes: does not apply to kind 'borg'"):
        parse(kind="borg", verify_read_bytes="1G")


def test_a_drill_in_progress_in_another_process_is_never_cleaned_away(tmp_path: Path) -> None:
    """A one-shot `dcguard-agent collect` beside the running agent cleans leftovers at its
    start: the running agent's drill holds its lock and is left alone."""
    from dcguard.agent.sources.storage.restore_drill import clean_leftovers

    drills = tmp_path / "restore-drill"
    live, dead = drills / "drill-db-live", drills / "drill-db-dead"
    for drill in (live, dead):
        (drill / "srv").mkdir(parents=True)
        (drill / "srv" / "restored.bin").write_bytes(b"x" * 100)
        drill.with_name(drill.name + ".lock").touch()
    # -o: flock itself holds the lock (not the sleep it runs), so killing it releases it.
    holder = subprocess.Popen(
        ["flock", "-o", str(drills / "drill-db-live.lock"), "sleep", "60"], start_new_session=True
    )
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["flock", "-n", str(drills / "drill-db-live.lock"), "true"], check=False
                ).returncode
                != 0
            ),
            message="the other process to hold the lock",
        )
        assert clean_leftovers(drills) == 1
        assert live.exists() and not dead.exists()
        assert not (drills / "drill-db-dead.lock").exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # flock and its sleep
        holder.wait()
    assert clean_leftovers(drills) == 1  # its holder is gone: a leftover now
    assert sorted(p.name for p in drills.iterdir()) == []
