"""backup: real restic and borg repositories, files on disk, and push records, made per test."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources.backup import BackupSource
from dcguard.collector.risk.config import RiskConfig
from dcguard.collector.risk.engine import RiskEngine
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb
from tests.storage_helpers import backup_source, collect, make_source
from tests.storage_reports import record, report
from tests.support import run_cli, wait_for

STALE = "2020-01-01 10:00:00"
STALE_EPOCH = time.mktime(time.strptime(STALE, "%Y-%m-%d %H:%M:%S"))  # both tools: local time


def check(source: BackupSource) -> dict[str, pb.Backup]:
    """One round of the background checks, then what collect() reports."""
    try:
        collect(source)
        assert source.wait_rounds(1, timeout=120)
        return {b.job: b for b in collect(source).backups}
    finally:
        source.close()


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        argv, check=True, capture_output=True, timeout=120, env={**os.environ, **(env or {})}
    )


# -- files -------------------------------------------------------------------------------


def test_files_newest_file_age_and_size(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    (dumps / "2024").mkdir(parents=True)
    old, new = dumps / "2024" / "a.sql.gz", dumps / "b.sql.gz"
    old.write_bytes(b"x" * 5000)
    new.write_bytes(b"y" * 7000)
    os.utime(old, (STALE_EPOCH, STALE_EPOCH))
    os.utime(new, (STALE_EPOCH + 3600, STALE_EPOCH + 3600))
    backup = check(
        backup_source(
            tmp_path, {"name": "dumps", "kind": "files", "path": str(dumps), "min_size": "4K"}
        )
    )["dumps"]
    assert backup.last_run.seconds == STALE_EPOCH + 3600 and backup.last_run_success
    assert backup.last_success.seconds == STALE_EPOCH + 3600
    assert backup.size_bytes == 7000 and backup.min_size_bytes == 4096
    assert backup.rpo_seconds == 26 * 3600 and not backup.error


def test_files_smaller_than_min_size_is_a_failed_run(tmp_path: Path) -> None:
    good, bad = tmp_path / "db-1.sql", tmp_path / "db-2.sql"
    good.write_bytes(b"x" * 2000)
    bad.write_bytes(b"")  # the dump died at once
    os.utime(good, (STALE_EPOCH, STALE_EPOCH))
    backup = check(
        backup_source(
            tmp_path,
            {"name": "db", "kind": "files", "min_size": 1000, "path": str(tmp_path / "db-*.sql")},
        )
    )["db"]
    assert backup.HasField("last_run") and not backup.last_run_success
    assert backup.last_success.seconds == STALE_EPOCH
    assert "below min_size" in backup.message


def test_files_missing_directory_and_empty_glob(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    found = check(
        backup_source(
            tmp_path,
            {"name": "unmounted", "kind": "files", "path": str(tmp_path / "mnt" / "backup")},
            {"name": "none", "kind": "files", "path": str(tmp_path / "empty" / "*.tar")},
        )
    )
    assert "does not exist" in found["unmounted"].error
    assert not found["none"].error and not found["none"].HasField("last_run")
    assert not found["none"].HasField("last_success")


# -- restic ------------------------------------------------------------------------------


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
    data = tmp_path / "data"
    data.mkdir()
    # Incompressible, so the data pack is the repository's biggest file.
    (data / "db.sql").write_bytes(os.urandom(52000))
    run("restic", "init", env=env)
    return {"repo": repo, "password": password, "env": env, "data": data}


def restic_job(repo: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "restic",
        "kind": "restic",
        "repository": str(repo["repo"]),
        "password_file": str(repo["password"]),
        "env": {"RESTIC_CACHE_DIR": repo["env"]["RESTIC_CACHE_DIR"]},
        **extra,
    }


def test_restic_fresh_snapshot_time_and_size(tmp_path: Path, restic_repo: dict[str, Any]) -> None:
    before = time.time()
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    backup = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    assert not backup.error, backup.error
    assert before - 2 <= backup.last_success.seconds <= time.time()
    assert backup.last_run_success and backup.size_bytes == 2000 * 26
    assert not backup.HasField("last_verified")  # verify_every not set


def test_restic_stale_snapshot(tmp_path: Path, restic_repo: dict[str, Any]) -> None:
    run("restic", "backup", "--time", STALE, str(restic_repo["data"]), env=restic_repo["env"])
    backup = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    assert backup.last_success.seconds == STALE_EPOCH and not backup.error


def test_restic_empty_repository_never_succeeded(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    backup = check(backup_source(tmp_path, restic_job(restic_repo)))["restic"]
    assert not backup.error and not backup.HasField("last_success")
    assert "no snapshots" in backup.message


def test_restic_check_passes_then_fails_on_a_corrupt_pack(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    job = restic_job(restic_repo, verify_every="1h", password_command=None)
    job.pop("password_command")
    before = time.time()
    verified = check(backup_source(tmp_path, job))["restic"]
    assert verified.last_verify_success and verified.last_verified.seconds >= before - 1
    assert verified.verify_every_seconds == 3600
    # Restarted within the hour: the verdict is remembered, restic check is not re-run.
    remembered = check(backup_source(tmp_path, job))["restic"]
    assert remembered.last_verified == verified.last_verified

    # The biggest pack holds the file data; tree packs (which `restic stats` reads) are
    # small. Damaging only data keeps the snapshot readable, as in a real bit rot case.
    data_pack = max(
        (p for p in (restic_repo["repo"] / "data").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data_pack.chmod(0o600)
    content = bytearray(data_pack.read_bytes())
    for offset in range(len(content) - 40, len(content)):
        content[offset] ^= 0xFF
    data_pack.write_bytes(bytes(content))
    deep_job = dict(job, verify_data=True)
    deep = check(backup_source(tmp_path / "deep", deep_job))["restic"]
    assert deep.HasField("last_verified") and not deep.last_verify_success
    # restic's error lines, never its progress bar ("[0:00] 100.00%  2 / 2 packs").
    assert re.fullmatch(
        r"restic check exited with 1: Pack ID does not match, want [0-9a-f]{64}, "
        r"got [0-9a-f]{64}; Fatal: repository contains errors",
        deep.message,
    )
    # The verdict saved in the state directory carries the same message after a restart.
    assert check(backup_source(tmp_path / "deep", deep_job))["restic"].message == deep.message
    # The collector's risk sentence quotes it, so on-call reads the damage, not a progress bar.
    now = time.time()
    # (The server-wide no_offsite_copy beside it is about where copies live, not this job.)
    (statement,) = [
        s
        for s in RiskEngine(RiskConfig(), down_after_intervals=3)
        .assess(record(report(collected_at=now, backups=[deep]), last_seen=now), now)
        .statements
        if s.subject == "backup 'restic'"
    ]
    assert statement.reason == "backup_failed"
    assert re.search(
        r"failed its last verification \d+ s ago \("
        + re.escape(deep.message)
        + r"\); the repository may be damaged",
        statement.message,
    )
    # A lost pack: the structural check (the default) finds it.
    data_pack.unlink()
    failed = check(backup_source(tmp_path / "fresh-state", job))["restic"]
    assert failed.HasField("last_verified") and not failed.last_verify_success
    assert re.fullmatch(
        r"restic check exited with 1: pack [0-9a-f]{64}: does not exist; "
        r"Fatal: repository contains errors",
        failed.message,
    )


def test_restic_password_command_and_wrong_password(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    job = restic_job(restic_repo)
    del job["password_file"]
    good = dict(job, password_command=f"cat {restic_repo['password']}")
    assert not check(backup_source(tmp_path, good))["restic"].error
    bad_password = tmp_path / "wrong"
    bad_password.write_text("wrong\n")
    wrong = dict(job, password_file=str(bad_password))
    backup = check(backup_source(tmp_path / "b", wrong))["restic"]
    assert "exited with" in backup.error and "wrong" not in backup.error.replace(
        "wrong password", ""
    )  # the message names the problem, never the secret


def test_restic_missing_binary_and_missing_repository(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    found = check(
        backup_source(
            tmp_path,
            restic_job(restic_repo, name="nobinary", binary=str(tmp_path / "restic")),
            restic_job(restic_repo, name="norepo", repository=str(tmp_path / "nowhere")),
        )
    )
    assert "not found" in found["nobinary"].error
    assert "restic snapshots exited with" in found["norepo"].error


def _closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("where", ["sftp", "missing path"])
def test_an_unreachable_repository_is_one_reason_that_says_what_is_known(
    tmp_path: Path, restic_repo: dict[str, Any], where: str
) -> None:
    """restic cannot open the repository: "could not be checked", never "never succeeded"."""
    repository = (
        f"sftp://dcguard@127.0.0.1:{_closed_loopback_port()}/srv/restic"
        if where == "sftp"
        else str(tmp_path / "not-mounted" / "restic")
    )
    job = restic_job(restic_repo, repository=repository, timeout="60s")
    backup = check(backup_source(tmp_path, job))["restic"]
    assert backup.error.startswith("restic snapshots exited with 1: ")
    assert not backup.HasField("last_success") and not backup.HasField("last_run")
    now = time.time()
    assessment = RiskEngine(RiskConfig(), down_after_intervals=3).assess(
        record(report(collected_at=now, backups=[backup]), last_seen=now), now
    )
    about_job = [s for s in assessment.statements if s.subject == "backup 'restic'"]
    assert [s.reason for s in about_job] == ["backup_failed"]
    # The local repository is on this server whether or not it is mounted: no off-host copy.
    assert [s.reason for s in assessment.statements if s not in about_job] == (
        [] if where == "sftp" else ["no_offsite_copy"]
    )
    assert assessment.score == (40 if where == "sftp" else 60)
    sentence = about_job[0].message
    assert sentence.startswith(
        "backup 'restic' could not be checked: restic snapshots exited with 1: "
    )
    assert "never succeeded" not in sentence
    assert sentence.endswith(
        "whether it has ever succeeded is unknown - check that this "
        "server can reach and read where the backup is stored"
    )


# -- borg --------------------------------------------------------------------------------


@pytest.fixture
def borg_repo(tmp_path: Path) -> dict[str, Any]:
    passphrase = tmp_path / "borg-passphrase"
    passphrase.write_text("borg secret\n")
    repo = tmp_path / "borg-repo"
    env = {"BORG_PASSPHRASE": "borg secret", "BORG_BASE_DIR": str(tmp_path / "borg-base")}
    data = tmp_path / "data"
    data.mkdir()
    (data / "files.txt").write_bytes(b"0123456789" * 1000)
    run("borg", "init", "-e", "repokey", str(repo), env=env)
    return {"repo": repo, "passphrase": passphrase, "env": env, "data": data}


def borg_job(repo: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "borg",
        "kind": "borg",
        "repository": str(repo["repo"]),
        "password_file": str(repo["passphrase"]),
        "env": {"BORG_BASE_DIR": repo["env"]["BORG_BASE_DIR"]},
        **extra,
    }


def test_borg_fresh_and_stale_archives(tmp_path: Path, borg_repo: dict[str, Any]) -> None:
    before = time.time()
    run(
        "borg",
        "create",
        f"{borg_repo['repo']}::stale",
        str(borg_repo["data"]),
        "--timestamp",
        STALE.replace(" ", "T"),
        env=borg_repo["env"],
    )
    stale = check(backup_source(tmp_path, borg_job(borg_repo)))["borg"]
    assert not stale.error, stale.error
    assert stale.last_success.seconds == STALE_EPOCH and stale.size_bytes == 10000
    run(
        "borg",
        "create",
        f"{borg_repo['repo']}::fresh",
        str(borg_repo["data"]),
        env=borg_repo["env"],
    )
    fresh = check(backup_source(tmp_path, borg_job(borg_repo)))["borg"]
    assert before - 2 <= fresh.last_success.seconds <= time.time() + 1


def test_borg_check_fails_on_a_corrupt_segment(tmp_path: Path, borg_repo: dict[str, Any]) -> None:
    run("borg", "create", f"{borg_repo['repo']}::one", str(borg_repo["data"]), env=borg_repo["env"])
    job = borg_job(borg_repo, verify_every="1d")
    assert check(backup_source(tmp_path, job))["borg"].last_verify_success
    segments = sorted(
        (p for p in (borg_repo["repo"] / "data").rglob("*") if p.is_file() and p.name.isdigit()),
        key=lambda p: p.stat().st_size,
    )
    biggest = segments[-1]
    content = bytearray(biggest.read_bytes())
    for offset in range(100, len(content) - 100, 97):
        content[offset] ^= 0xFF
    biggest.write_bytes(bytes(content))
    failed = check(backup_source(tmp_path / "fresh-state", job))["borg"]
    assert failed.HasField("last_verified") and not failed.last_verify_success
    assert failed.message.startswith(
        "borg check exited with 1: Data integrity error: Segment entry checksum mismatch [segment "
    )
    assert failed.message.endswith("; Finished full repository check, errors found.")
    # The archive's metadata is damaged too: borg's crash report ends with its
    # environment, and the reported error is the line that names the damage.
    assert "checksum mismatch" in failed.error


def test_tool_messages_drop_progress_and_carriage_returns(
    tmp_path: Path, borg_repo: dict[str, Any]
) -> None:
    """borg --progress writes "Checking segments 16.7%" and CRs into the same stream as its
    errors; the message keeps the errors only."""
    from dcguard.agent.sources.storage.tools import error_line

    run("borg", "create", f"{borg_repo['repo']}::one", str(borg_repo["data"]), env=borg_repo["env"])
    segment = max(
        (p for p in (borg_repo["repo"] / "data").rglob("*") if p.is_file() and p.name.isdigit()),
        key=lambda p: p.stat().st_size,
    )
    content = bytearray(segment.read_bytes())
    content[len(content) // 2] ^= 0xFF
    segment.write_bytes(bytes(content))
    checked = subprocess.run(
        ["borg", "check", "--progress", str(borg_repo["repo"])],
        capture_output=True,
        timeout=120,
        env={**os.environ, **borg_repo["env"]},
        check=False,
    )
    stderr = checked.stderr.decode()  # bytes: text mode would turn the CRs into newlines
    assert checked.returncode == 1 and "\r" in stderr and "%" in stderr
    message = error_line(stderr, checked.stdout.decode())
    assert message.startswith("Data integrity error: Segment entry checksum mismatch")
    assert message.endswith("; Finished full repository check, errors found.")
    assert "%" not in message and "\r" not in message and "Checking" not in message
    assert error_line("\x1b[2K[0:00] 100.00%  2 / 2 packs\r\r\n", "") == ""
    assert error_line("", "just a last line\n") == "just a last line"
    assert len(error_line("error: " + "x" * 5000)) == 300


def test_borg_wrong_passphrase_is_a_status(tmp_path: Path, borg_repo: dict[str, Any]) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    backup = check(backup_source(tmp_path, borg_job(borg_repo, password_file=str(wrong))))
    assert "borg list exited with" in backup["borg"].error
    assert "nope" not in backup["borg"].error


# -- garbage from the tools --------------------------------------------------------------

FAKE_TOOL = """\
import sys
out = {out!r}
sys.stdout.write(out)
sys.exit({code})
"""


def fake_tool(tmp_path: Path, name: str, out: str, code: int = 0) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + FAKE_TOOL.format(out=out, code=code))
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "out", "code", "needle"),
    [
        ("restic", '[{"time": "2024-01-0', 0, "printed invalid JSON"),
        ("restic", '{"snapshots": []}', 0, "not a list"),
        ("restic", '[{"time": "yesterday", "id": "x"}]', 0, "without a valid time"),
        ("restic", "", 3, "exited with 3"),
        ("borg", '{"archives": [{"name": "a", "time": 5}]}', 0, "without a valid name or time"),
        ("borg", '{"archives": "many"}', 0, "no archives list"),
        ("borg", "Killed", 137, "exited with 137"),
        ("borg", '{"archives": [{"name": "a", "time": "2024-01-01T00:00:00"}]', 0, "invalid JSON"),
    ],
)
def test_garbage_from_restic_and_borg_is_a_status(
    tmp_path: Path, kind: str, out: str, code: int, needle: str
) -> None:
    binary = fake_tool(tmp_path, kind, out, code)
    job = {"name": "j", "kind": kind, "repository": str(tmp_path / "r"), "binary": binary}
    backup = check(backup_source(tmp_path, job))["j"]
    assert needle in backup.error


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    out = json.dumps(
        [
            {
                "time": "2024-05-01T10:00:00.123456789+07:00",
                "id": "abc",
                "summary": {"future": True},
                "new_field": [1],
            }
        ]
    )
    binary = tmp_path / "restic"
    binary.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "print('{\"total_size\": 42, \"v2\": 1}' if 'stats' in sys.argv "
        f"else {out!r})\n"
    )
    binary.chmod(0o755)
    job = {"name": "j", "kind": "restic", "repository": "/r", "binary": str(binary)}
    backup = check(backup_source(tmp_path, job))["j"]
    assert not backup.error and backup.size_bytes == 42
    assert backup.last_success.seconds == 1714532400


def test_one_broken_job_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "ok.tar").write_text("x")
    found = check(
        backup_source(
            tmp_path,
            {"name": "broken", "kind": "borg", "repository": "/r", "binary": "/nonexistent/borg"},
            {"name": "fine", "kind": "files", "path": str(tmp_path / "ok.tar")},
        )
    )
    assert found["broken"].error and not found["fine"].error and found["fine"].last_run_success


# -- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "needle"),
    [
        ({"kind": "files", "path": "/x"}, "backup[0].name: is required"),
        ({"name": "a b", "kind": "files", "path": "/x"}, "backup[0].name: must be 1-64"),
        ({"name": "nightly\n", "kind": "files", "path": "/x"}, "backup[0].name: must be 1-64"),
        ({"name": "a", "kind": "tape"}, "backup[0].kind: must be one of files, restic, borg, push"),
        ({"name": "a", "kind": "files", "path": "/x", "rpo": "daily"}, "backup[0].rpo: not a dur"),
        ({"name": "a", "kind": "files", "path": "/x", "rpo": "0s"}, "backup[0].rpo: must be at"),
        ({"name": "a", "kind": "files"}, "backup[0].path: is required for kind 'files'"),
        (
            {"name": "a", "kind": "files", "path": "/x", "min_size": "lots"},
            "min_size: must be a size",
        ),
        (
            {"name": "a", "kind": "files", "path": "/x", "min_size": -1},
            "min_size: must be at least 0",
        ),
        (
            {"name": "a", "kind": "files", "path": "/x", "min_size": True},
            "min_size: must be a size",
        ),
        (
            {"name": "a", "kind": "files", "path": "/x", "repository": "/r"},
            "backup[0].repository: does not apply to kind 'files'",
        ),
        ({"name": "a", "kind": "push", "verify_every": "1d"}, "verify_every: does not apply"),
        ({"name": "a", "kind": "restic"}, "backup[0].repository: is required"),
        (
            {
                "name": "a",
                "kind": "restic",
                "repository": "/r",
                "password_file": "/p",
                "password_command": "pass",
            },
            "give password_file or password_command, not both",
        ),
        (
            {"name": "a", "kind": "restic", "repository": "/r", "env": {"1BAD": "x"}},
            "backup[0].env.1BAD: is not a valid environment variable name",
        ),
        (
            {"name": "a", "kind": "restic", "repository": "/r", "env": {"BAD\n": "x"}},
            "is not a valid environment variable name",
        ),
        (
            {"name": "a", "kind": "borg", "repository": "/r", "env": {"BORG_X": 1}},
            "backup[0].env.BORG_X: must be a string",
        ),
        (
            {"name": "a", "kind": "borg", "repository": "/r", "verify_every": "weekly"},
            "backup[0].verify_every: not a duration",
        ),
        (
            {"name": "a", "kind": "files", "path": "/x", "verify_data": True},
            "backup[0].verify_data: does not apply to kind 'files'",
        ),
        (
            {"name": "a", "kind": "restic", "repository": "/r", "verify_data": "yes"},
            "backup[0].verify_data: must be true or false",
        ),
        (
            {"name": "a", "kind": "borg", "repository": "/r", "host": "db01"},
            "backup[0].host: does not apply to kind 'borg'",
        ),
        (
            {"name": "a", "kind": "restic", "repository": "/r", "tags": "mysql"},
            "backup[0].tags: must be a list of strings",
        ),
        (
            {"name": "a", "kind": "restic", "repository": "/r", "paths": [1]},
            "backup[0].paths: must be a list of strings",
        ),
        (
            {"name": "a", "kind": "restic", "repository": "/r", "glob_archives": "x-*"},
            "backup[0].glob_archives: does not apply to kind 'restic'",
        ),
        (
            {"name": "a", "kind": "borg", "repository": "/r", "glob_archives": ""},
            "backup[0].glob_archives: must not be empty",
        ),
        ({"name": "a", "kind": "push", "check_every": "0s"}, "check_every: must be at least 1s"),
        ({"name": "a", "kind": "push", "timeout": 5}, "backup[0].timeout: must be a duration"),
        ({"name": "a", "kind": "push", "source": 5}, "backup[0].source: must be a string"),
        ({"name": "a", "kind": "push", "colour": "red"}, "backup[0].colour: unknown key"),
    ],
)
def test_backup_config_garbage(tmp_path: Path, job: dict[str, Any], needle: str) -> None:
    job = {"rpo": "1d", **job}
    with pytest.raises(ConfigError, match=re.escape(needle)):
        make_source("backup", {"backup": [job]}, tmp_path)


def test_duplicate_job_names_and_a_plain_table(tmp_path: Path) -> None:
    job = {"name": "a", "kind": "push", "rpo": "1d"}
    with pytest.raises(ConfigError, match=r"backup\[1\]\.name: 'a' is used by another"):
        make_source("backup", {"backup": [job, job]}, tmp_path)
    with pytest.raises(ConfigError, match="backup: must be an array of tables"):
        make_source("backup", {"backup": job}, tmp_path)


def test_borg_locked_by_a_running_backup(tmp_path: Path, borg_repo: dict[str, Any]) -> None:
    """While `borg create` holds the lock: the archive time is read, size and check wait."""
    run("borg", "create", f"{borg_repo['repo']}::one", str(borg_repo["data"]), env=borg_repo["env"])
    job = borg_job(borg_repo, verify_every="1d", timeout="4s")
    first = check(backup_source(tmp_path, job))["borg"]
    assert first.size_bytes == 10000 and first.last_verify_success
    holder = subprocess.Popen(
        ["borg", "with-lock", str(borg_repo["repo"]), "sleep", "60"],
        env={**os.environ, **borg_repo["env"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock_dir = borg_repo["repo"] / "lock.exclusive"
        wait_for(lock_dir.exists, timeout=30, message="borg with-lock to take the lock")
        (tmp_path / "state" / "backup-state.json").unlink()  # as if never checked before
        locked = check(backup_source(tmp_path, job))["borg"]
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not locked.error and locked.last_success == first.last_success
    assert locked.size_bytes == 0  # unknown for now, not a failure
    assert not locked.HasField("last_verified")  # postponed, not recorded as failed


def test_restic_repository_shared_by_hosts_and_jobs(
    tmp_path: Path, restic_repo: dict[str, Any]
) -> None:
    """Another host's fresh snapshot must not hide this host's stale one."""
    env = restic_repo["env"]
    run(
        "restic",
        "backup",
        "--host",
        "db01",
        "--tag",
        "mysql",
        "--time",
        STALE,
        str(restic_repo["data"]),
        env=env,
    )
    run("restic", "backup", "--host", "web02", str(restic_repo["data"]), env=env)
    found = check(
        backup_source(
            tmp_path,
            restic_job(restic_repo, name="any"),
            restic_job(
                restic_repo,
                name="db01",
                host="db01",
                tags=["mysql"],
                paths=[str(restic_repo["data"])],
            ),
            restic_job(restic_repo, name="db01-etc", host="db01", tags=["etc"]),
        )
    )
    assert found["any"].last_success.seconds > STALE_EPOCH
    assert found["db01"].last_success.seconds == STALE_EPOCH
    assert not found["db01-etc"].HasField("last_success") and not found["db01-etc"].error


def test_borg_glob_archives_selects_the_job(tmp_path: Path, borg_repo: dict[str, Any]) -> None:
    run(
        "borg",
        "create",
        "--timestamp",
        STALE.replace(" ", "T"),
        f"{borg_repo['repo']}::mail-2020",
        str(borg_repo["data"]),
        env=borg_repo["env"],
    )
    run(
        "borg",
        "create",
        f"{borg_repo['repo']}::www-now",
        str(borg_repo["data"]),
        env=borg_repo["env"],
    )
    found = check(backup_source(tmp_path, borg_job(borg_repo, name="mail", glob_archives="mail-*")))
    assert found["mail"].last_success.seconds == STALE_EPOCH


def test_restic_size_is_read_once_per_snapshot(tmp_path: Path, restic_repo: dict[str, Any]) -> None:
    """`restic stats` walks a snapshot's trees: not again for a snapshot already measured."""
    calls = tmp_path / "calls"
    shim = tmp_path / "restic-shim"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec restic "$@"\n')
    shim.chmod(0o755)
    run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
    source = backup_source(tmp_path, restic_job(restic_repo, binary=str(shim)))
    try:
        collect(source)
        assert source.wait_rounds(1, timeout=120)
        source.wake()
        assert source.wait_rounds(2, timeout=120)
        assert calls.read_text().split().count("stats") == 1
        (restic_repo["data"] / "new.sql").write_bytes(os.urandom(1000))
        run("restic", "backup", str(restic_repo["data"]), env=restic_repo["env"])
        source.wake()
        assert source.wait_rounds(3, timeout=120)
        [backup] = collect(source).backups
    finally:
        source.close()
    assert calls.read_text().split().count("stats") == 2
    assert backup.size_bytes == 53000


def test_the_documented_example_config_is_valid(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "storage-and-backups.md").read_text()
    example = doc.split("## Example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndepartment = "t"\nstate_dir = "{tmp_path}"\n[collector]\n'
        f'addresses = ["127.0.0.1:1"]\ninsecure = true\n{example}'
    )
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "backup" in result.stdout and "smart" in result.stdout


def test_restart_reports_the_saved_results_before_checking_again(tmp_path: Path) -> None:
    dump = tmp_path / "dump.sql"
    dump.write_bytes(b"x" * 100)
    os.utime(dump, (STALE_EPOCH, STALE_EPOCH))
    job = {"name": "dump", "kind": "files", "path": str(dump)}
    first = check(backup_source(tmp_path, job))["dump"]
    slow = fake_tool(tmp_path, "slow-restic", "", 0)
    Path(slow).write_text("#!/bin/sh\nsleep 20\n")  # a check that cannot finish first
    restarted = backup_source(
        tmp_path,
        job,
        {"name": "new", "kind": "restic", "repository": "/r", "binary": slow, "timeout": "2s"},
    )
    try:
        # No check has run in this instance yet: the saved job is reported as it was,
        # the never-checked one not at all (an empty entry would read "never succeeded").
        report = collect(restarted)
    finally:
        restarted.close()
    assert [b.job for b in report.backups] == ["dump"]
    assert report.backups[0] == first


@pytest.mark.parametrize(
    "saved",
    [
        '{"dump": {"result": {"last_run": "x", "last_run_success": true, "last_success": null,'
        ' "size_bytes": 1, "message": "", "snapshot": ""}}}',
        '{"dump": {"result": {"unknown": 1}}}',
        '{"dump": {"verify": {"at": "soon"}}}',
        '["not", "an", "object"]',
        '{"dump": {"result": {"last_run',
    ],
)
def test_damaged_saved_state_is_ignored(tmp_path: Path, saved: str) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "backup-state.json").write_text(saved)
    (tmp_path / "d").write_text("x")
    found = check(
        backup_source(tmp_path, {"name": "dump", "kind": "files", "path": str(tmp_path / "d")})
    )
    assert found["dump"].last_run_success and not found["dump"].error
