"""files jobs: the newest dump or archive is read to its end (issue 17).

Each case is a real file made by the test the way a backup script makes it;
its complete twin must pass, so a check that always fails is caught too.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dcguard.collector.risk.config import RiskConfig
from dcguard.collector.risk.engine import RiskEngine
from dcguard.v1 import collector_pb2 as pb
from tests.storage_helpers import backup_source, collect
from tests.storage_reports import record, report

MYSQL = (
    b"-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost\n"
    + b"INSERT INTO t VALUES (1,'a');\n" * 2000
)
MYSQL_DONE = b"-- Dump completed on 2026-12-05  2:00:01\n"
PG = (
    b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"
    + b"COPY public.t (id) FROM stdin;\n1\n\\.\n" * 500
)
PG_DONE = b"--\n-- PostgreSQL database dump complete\n--\n\n"


def _older(path: Path) -> Path:
    """Written two hours ago: settled, no longer being written by the backup script."""
    then = time.time() - 7200
    os.utime(path, (then, then))
    return path


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _tar_gz(path: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(4):
            data = os.urandom(40000)
            info = tarfile.TarInfo(f"www/file-{index}.bin")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sqlite(path: Path) -> bytes:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("CREATE INDEX tv ON t (v)")
        db.executemany(
            "INSERT INTO t (v) VALUES (?)", [(os.urandom(30).hex(),) for _ in range(3000)]
        )
    db.close()
    data = path.read_bytes()
    path.unlink()
    return data


def _corrupt_pages(data: bytes) -> bytes:
    """Damage the middle pages in place (same size), as a bad sector or torn copy does."""
    out = bytearray(data)
    for offset in range(len(out) // 3, 2 * len(out) // 3, 7):
        out[offset] ^= 0x5A
    return bytes(out)


# name: (complete file, broken twin, what the broken twin's sentence says)
CASES: dict[str, tuple[Callable[[Path], bytes], Callable[[Path], bytes], str]] = {
    "db-2026-12-05.sql.gz": (
        lambda p: gzip.compress(MYSQL + MYSQL_DONE),
        lambda p: gzip.compress(MYSQL),  # mysqldump killed, gzip closed its stream
        "db-2026-12-05.sql.gz ends without mysqldump's completion line: the dump was cut off",
    ),
    "db-2026-12-06.sql.gz": (
        lambda p: gzip.compress(MYSQL + MYSQL_DONE),
        lambda p: _half(gzip.compress(MYSQL + MYSQL_DONE)),  # disk full mid-write
        "db-2026-12-06.sql.gz cannot be read to its end: the file is truncated",
    ),
    "pg-2026-12-05.sql": (
        lambda p: PG + PG_DONE,
        lambda p: PG,
        "pg-2026-12-05.sql ends without pg_dump's completion line: the dump was cut off",
    ),
    "www-2026-12-05.tar.gz": (
        _tar_gz,
        lambda p: _half(_tar_gz(p)),
        "www-2026-12-05.tar.gz cannot be read to its end: the file is truncated",
    ),
    "app-2026-12-05.sqlite": (
        _sqlite,
        lambda p: _corrupt_pages(_sqlite(p)),
        "app-2026-12-05.sqlite ",
    ),
}


def _jobs(base: Path, broken: bool) -> list[dict[str, str]]:
    jobs = []
    for index, (name, (good, bad, _said)) in enumerate(CASES.items()):
        directory = base / f"job{index}"
        directory.mkdir(parents=True)
        path = directory / name
        path.write_bytes((bad if broken else good)(directory / "scratch"))
        _older(path)
        jobs.append({"name": f"job{index}", "kind": "files", "path": str(directory)})
    return jobs


def _check(tmp_path: Path, jobs: list[dict[str, str]]) -> dict[str, pb.Backup]:
    source = backup_source(tmp_path, *jobs)
    try:
        collect(source)
        assert source.wait_rounds(1, timeout=120)
        return {b.job: b for b in collect(source).backups}
    finally:
        source.close()


def test_complete_dumps_and_archives_pass(tmp_path: Path) -> None:
    found = _check(tmp_path / "state", _jobs(tmp_path / "good", broken=False))
    for index, name in enumerate(CASES):
        test = found[f"job{index}"].restore_test
        assert found[f"job{index}"].HasField("restore_test"), name
        assert test.success and test.files == 1 and test.bytes > 0, (name, test.message)


def test_broken_dumps_and_archives_are_unrestorable_naming_the_file(tmp_path: Path) -> None:
    found = _check(tmp_path / "state", _jobs(tmp_path / "bad", broken=True))
    now = time.time()
    for index, (name, (_good, _bad, said)) in enumerate(CASES.items()):
        backup = found[f"job{index}"]
        assert not backup.restore_test.success, name
        assert backup.restore_test.message.startswith(said), backup.restore_test.message
        (statement,) = [
            s
            for s in RiskEngine(RiskConfig(), down_after_intervals=3)
            .assess(record(report(collected_at=now, backups=[backup]), last_seen=now), now)
            .statements
            if s.subject == f"backup 'job{index}'"
        ]
        assert statement.reason == "backup_unrestorable"
        assert statement.message.startswith(f"backup 'job{index}' failed its restore test "), (
            statement.message
        )
        assert said in statement.message and "make a new dump now" in statement.message


def test_sqlite_damage_is_named_by_the_integrity_check(tmp_path: Path) -> None:
    index = list(CASES).index("app-2026-12-05.sqlite")
    found = _check(tmp_path / "state", _jobs(tmp_path / "bad", broken=True))
    message = found[f"job{index}"].restore_test.message
    assert re.match(
        r"app-2026-12-05\.sqlite (fails SQLite's integrity check|is not a readable "
        r"SQLite database): ",
        message,
    ), message


def test_a_file_still_being_written_is_not_judged_yet(tmp_path: Path) -> None:
    directory = tmp_path / "dumps"
    directory.mkdir()
    (directory / "db.sql.gz").write_bytes(gzip.compress(MYSQL))  # mtime: now
    found = _check(tmp_path / "state", [{"name": "db", "kind": "files", "path": str(directory)}])
    assert not found["db"].HasField("restore_test")


def test_zstd_is_tested_with_zstd(tmp_path: Path) -> None:
    directory = tmp_path / "dumps"
    directory.mkdir()
    whole = directory / "db.sql.zst"
    subprocess.run(
        ["zstd", "-q", "-o", str(whole)], input=MYSQL + MYSQL_DONE, check=True, timeout=30
    )
    _older(whole)
    job = {"name": "db", "kind": "files", "path": str(directory)}
    assert _check(tmp_path / "a", [job])["db"].restore_test.success
    whole.write_bytes(whole.read_bytes()[:-200])
    _older(whole)
    test = _check(tmp_path / "b", [job])["db"].restore_test
    assert not test.success
    assert test.message.startswith("db.sql.zst cannot be read: zstd exited with 1: "), test.message


def test_over_the_byte_budget_gets_no_verdict(tmp_path: Path) -> None:
    directory = tmp_path / "dumps"
    directory.mkdir()
    (directory / "db.sql").write_bytes(MYSQL)
    _older(directory / "db.sql")
    job = {"name": "db", "kind": "files", "path": str(directory), "restore_test_max_bytes": "1K"}
    assert not _check(tmp_path / "state", [job])["db"].HasField("restore_test")


@pytest.mark.parametrize("value", ['"lots"', "0", "true"])
def test_files_budget_garbage_is_one_line(tmp_path: Path, value: str) -> None:
    from tests.support import run_cli

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
restore_test_max_bytes = {value}
""")
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "backup[0].restore_test_max_bytes: must be" in lines[0], lines


# -- PostgreSQL custom-format dumps, made by a real server ------------------------------------

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.fixture
def pg_custom_dump(tmp_path: Path) -> Iterator[Path]:
    """pg_dump -Fc of a real PostgreSQL (unix socket only, run as the postgres user)."""
    if not PG_BIN or not shutil.which("pg_restore") or not shutil.which("runuser"):
        pytest.skip("PostgreSQL server binaries are not installed")
    bin_dir = PG_BIN[-1].parent
    # Not under tmp_path: pytest's base directory is root's alone, and the server
    # (which refuses to run as root) must reach its data directory.
    home = Path(tempfile.mkdtemp(prefix="dcguard-pg-"))
    shutil.chown(home, "postgres")

    def as_postgres(*argv: str) -> None:
        """Run as the postgres user (the server refuses root)."""
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=home,
        )

    dump = tmp_path / "made.dump"
    try:
        as_postgres(
            str(bin_dir / "initdb"), "-D", str(home / "data"), "-A", "trust", "-U", "postgres"
        )
        port = "54329"  # the socket's name only: listen_addresses is empty (no TCP)
        as_postgres(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(home / "data"),
            "-l",
            str(home / "log"),
            "-o",
            f"-c listen_addresses='' -k {home} -p {port}",
            "-w",
            "start",
        )
        try:
            as_postgres(
                str(bin_dir / "psql"),
                "-h",
                str(home),
                "-p",
                port,
                "-q",
                "-c",
                "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
                "postgres",
            )
            as_postgres(
                str(bin_dir / "pg_dump"),
                "-h",
                str(home),
                "-p",
                port,
                "-Fc",
                "-f",
                str(home / "db.dump"),
                "postgres",
            )
        finally:
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(home / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=120,
                check=False,
            )
        shutil.copyfile(home / "db.dump", dump)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    yield dump


def test_a_custom_dump_cut_in_its_data_is_caught_its_twin_passes(
    tmp_path: Path, pg_custom_dump: Path
) -> None:
    """`pg_restore --list` passes the cut dump (its table of contents is whole)."""
    directory = tmp_path / "dumps"
    directory.mkdir()
    dump = directory / "db-2026-12-05.dump"
    dump.write_bytes(pg_custom_dump.read_bytes())
    _older(dump)
    job = {"name": "pg", "kind": "files", "path": str(directory)}
    assert _check(tmp_path / "a", [job])["pg"].restore_test.success
    dump.write_bytes(_half(pg_custom_dump.read_bytes()))
    _older(dump)
    assert (
        subprocess.run(
            ["pg_restore", "--list", str(dump)], capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    )
    test = _check(tmp_path / "b", [job])["pg"].restore_test
    assert not test.success
    assert test.message == (
        "db-2026-12-05.dump cannot be read: pg_restore exited with 1: "
        "pg_restore: error: could not read from input file: end of file"
    )
