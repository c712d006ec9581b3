"""3-2-1: where each backup's copy lives, and no_offsite_copy (issue 17)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources.backup import BackupSource
from dcguard.collector.errors import Rejection
from dcguard.collector.receive.validate_storage import validate_storage
from dcguard.collector.risk.config import RiskConfig
from dcguard.collector.risk.engine import RiskEngine
from dcguard.v1 import collector_pb2 as pb
from tests.mounts import tmpfs
from tests.storage_helpers import collect, make_source
from tests.storage_reports import Submitter, record, report
from tests.support import metric, run_cli


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        argv, check=True, capture_output=True, timeout=120, env={**os.environ, **(env or {})}
    )


def locations(
    state: Path, jobs: list[dict[str, Any]], mounts_file: str = "/proc/self/mounts"
) -> dict[str, str]:
    config = {
        "backup": [{"rpo": "1d", **job} for job in jobs],
        "storage": {"mounts_file": mounts_file},
    }
    source = make_source("backup", config, state)
    assert isinstance(source, BackupSource)
    try:
        collect(source)
        assert source.wait_rounds(1, timeout=120)
        return {b.job: b.copy_location for b in collect(source).backups}
    finally:
        source.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def restic_repo(tmp_path: Path) -> dict[str, Any]:
    password = tmp_path / "pw"
    password.write_text("pw\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "db.sql").write_bytes(os.urandom(1000))
    return {"password": password, "data": data, "cache": tmp_path / "cache"}


def _restic(repo: dict[str, Any], name: str, repository: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "restic",
        "repository": repository,
        "timeout": "60s",
        "restore_test_every": "0",
        "password_file": str(repo["password"]),
        "source": str(repo["data"]),
        "env": {"RESTIC_CACHE_DIR": str(repo["cache"])},
        **extra,
    }


def test_an_sftp_repository_is_off_host_a_second_tmpfs_is_not(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    with tmpfs(tmp_path / "second-disk") as second:
        local = second / "restic"
        run(
            "restic",
            "init",
            env={
                "RESTIC_REPOSITORY": str(local),
                "RESTIC_PASSWORD_FILE": str(restic_repo["password"]),
                "RESTIC_CACHE_DIR": str(restic_repo["cache"]),
            },
        )
        found = locations(
            tmp_path / "state",
            [
                _restic(
                    restic_repo, "remote", f"sftp://dcguard@127.0.0.1:{_closed_port()}/srv/restic"
                ),
                _restic(restic_repo, "tmpfs", str(local)),
                _restic(restic_repo, "vault", str(local), copy_location="offline"),
            ],
        )
    assert found == {"remote": "other_host", "tmpfs": "this_host", "vault": "offline"}


def test_a_repository_on_a_network_filesystem_is_off_host(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """The mount table (storage.mounts_file) says the repository's directory is NFS."""
    nas = tmp_path / "nas"
    nas.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        Path("/proc/self/mounts").read_text()
        + f"backup-nas:/export {nas} nfs4 rw,relatime 0 0\n"
        + f"backup-nas:/share {tmp_path / 'smb'} cifs rw 0 0\n"
    )
    found = locations(
        tmp_path / "state",
        [
            _restic(restic_repo, "nfs", str(nas / "restic")),
            {
                "name": "dumps",
                "kind": "files",
                "path": str(tmp_path / "data"),
                "source": str(restic_repo["data"]),
            },
        ],
        mounts_file=str(mounts),
    )
    # The same filesystem as its data: the dumps job is on the same disk.
    assert found == {"nfs": "other_host", "dumps": "same_disk"}


def _backup(job: str, where: str) -> pb.Backup:
    now = time.time()
    entry = pb.Backup(
        job=job, kind="restic", rpo_seconds=86400, last_run_success=True, copy_location=where
    )
    entry.last_success.FromSeconds(int(now - 60))
    entry.last_run.FromSeconds(int(now - 60))
    return entry


def _reasons(*backups: pb.Backup) -> dict[str, str]:
    now = time.time()
    statements = (
        RiskEngine(RiskConfig(), down_after_intervals=3)
        .assess(record(report(collected_at=now, backups=list(backups)), last_seen=now), now)
        .statements
    )
    return {s.reason: s.message for s in statements}


def test_no_offsite_copy_names_where_every_copy_is() -> None:
    reasons = _reasons(_backup("etc", "same_disk"), _backup("db", "other_disk"))
    assert reasons["no_offsite_copy"].startswith(
        "no backup of this server lies on another host: backup 'etc' is on the same disk as "
        "its data; backup 'db' is on another disk of this server - one lost server"
    )
    for off_host in ("other_host", "offline", "immutable"):
        assert "no_offsite_copy" not in _reasons(
            _backup("etc", "same_disk"), _backup("db", off_host)
        )
    # An agent that does not report places (older version): nothing is claimed.
    assert "no_offsite_copy" not in _reasons(_backup("etc", ""))


def test_an_unknown_copy_location_is_rejected() -> None:
    with pytest.raises(Rejection, match="copy_location 'moon' is not one of"):
        validate_storage(report(backups=[_backup("etc", "moon")]))


def test_copy_location_metric_and_reason_on_a_real_collector(collector: Any) -> None:
    now = time.time()
    tested = _backup("nightly", "other_host")
    tested.restore_test.time.FromSeconds(int(now - 600))
    tested.restore_test.success = True
    for host, backup in (("db01", _backup("nightly", "this_host")), ("db02", tested)):
        submitter = Submitter(collector.grpc_address, host)
        try:
            assert submitter.send(report(collected_at=now, backups=[backup])) == 1
        finally:
            submitter.close()
    samples = collector.metrics()
    assert (
        metric(
            samples,
            "dcguard_backup_copy_location",
            host="db01",
            job="nightly",
            location="this_host",
        )
        == 1
    )
    assert (
        metric(
            samples,
            "dcguard_backup_copy_location",
            host="db02",
            job="nightly",
            location="other_host",
        )
        == 1
    )
    assert metric(samples, "dcguard_data_loss_risk", host="db01", reason="no_offsite_copy") == 1
    assert metric(samples, "dcguard_data_loss_risk", host="db02", reason="no_offsite_copy") == 0
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"],
            input=collector.metrics_text(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip()
    # The fleet view: which servers have no off-host copy, which were never restore-tested.
    listing = collector.cli("backups")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines() == [
        "No off-host copy: 1 of 2 servers",
        "  db01 (so-tu-phap): nightly this_host",
        "Never restore-tested: 1 of 2 servers",
        "  db01 (so-tu-phap): nightly (restic)",
    ]
    as_json = json.loads(collector.cli("backups", "--json").stdout)
    assert [(s["host"], s["off_host_copy"], s["never_restore_tested"]) for s in as_json] == [
        ("db01", False, ["nightly"]),
        ("db02", True, []),
    ]
    assert as_json[1]["jobs"][0]["restore_test"]["success"] is True
    risk = collector.cli("risk")
    assert (
        "no_offsite_copy: no backup of this server lies on another host: backup 'nightly' "
        "is on this server - one lost server" in risk.stdout
    ), risk.stdout


@pytest.mark.parametrize("value", ['"cloud"', "true", '""x'])
def test_copy_location_garbage_is_one_line(tmp_path: Path, value: str) -> None:
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
kind = "push"
rpo = "1d"
copy_location = {value}
""")
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "copy_location" in lines[0] or "cannot parse" in lines[0], lines[0]
