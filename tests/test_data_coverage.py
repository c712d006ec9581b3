"""Data no backup covers (issue 18, coverage): discovery, coverage, and `data_not_backed_up`.

Real parts: the session's private PostgreSQL cluster (a real postgres process
and data directory), real restic and borg repositories, the agent and the
collector as processes over gRPC. A network mount cannot be made here: it is
one line of the mount table the agent is pointed at (as the kernel writes it).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest

from dcguard.agent.config import load_config
from dcguard.agent.sources import SourceContext, load_all
from dcguard.agent.sources.backup import recorded_paths
from dcguard.agent.sources.storage.data_locations import (
    DataLocation,
    DiscoveryContext,
    DiscoveryLimits,
    discover,
)
from dcguard.common.config import ConfigError, Table
from dcguard.v1 import collector_pb2 as pb
from tests.storage_helpers import backup_source, collect
from tests.submit import make_report, submit
from tests.support import Agent, metric, run_cli, wait_for

HOST = {"host": "testhost", "department": "test-dept"}


def run(*argv: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode in ok, (argv, done.returncode, done.stderr)


def data_dir(path: Path, *files: str) -> Path:
    """A directory holding the named files (relative paths), each with a few bytes."""
    path.mkdir(parents=True, exist_ok=True)
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("data\n")
    return path


def postmaster_view(tmp_path: Path, cluster: Any) -> Path:
    """A /proc holding only the cluster's running postmaster (the real /proc/PID).

    The machine may run other PostgreSQL servers (other tests' clusters): the
    test's view names exactly the one it made.
    """
    pid = (cluster.data / "postmaster.pid").read_text().split()[0]
    view = tmp_path / "proc"
    view.mkdir()
    (view / pid).symlink_to(f"/proc/{pid}")
    return view


def smb_conf(path: Path, shares: dict[str, str], extra: str = "") -> Path:
    text = "[global]\n   workgroup = SOTUPHAP\n   server role = standalone server\n\n"
    for name, share_path in shares.items():
        text += f"[{name}]\n   path = {share_path}\n   read only = no\n\n"
    path.write_text(text + extra)
    return path


def mount_table(tmp_path: Path, network_mountpoint: Path) -> Path:
    """The machine's mount table plus one NFS mount (what the kernel would list)."""
    table = tmp_path / "mounts"
    own = Path("/proc/self/mounts").read_text()
    table.write_text(own + f"fileserver:/export {network_mountpoint} nfs4 rw,relatime 0 0\n")
    return table


# -- discovery ---------------------------------------------------------------------------


def test_discovery_finds_databases_shares_roots_and_named_paths_that_hold_data(
    tmp_path: Path, pg_cluster: Any
) -> None:
    t = tmp_path
    # A configured (Debian-layout) cluster besides the running one.
    conf = t / "etc-postgresql" / "16" / "reports" / "postgresql.conf"
    conf.parent.mkdir(parents=True)
    reports = data_dir(t / "pg16-reports", "PG_VERSION", "base/1/1259")
    conf.write_text(f"port = 5433\ndata_directory = '{reports}'\t# use data in another dir\n")
    mysql = data_dir(t / "mysql", "ibdata1", "app/users.ibd")
    (t / "my.cnf").write_text(f"[client]\nport = 3306\n!includedir {t / 'conf.d'}\n")
    (t / "conf.d").mkdir()
    (t / "conf.d" / "50-server.cnf").write_text(f"[mysqld]\nuser = mysql\ndatadir = {mysql}\n")
    shares = {
        "docs": data_dir(t / "docs", "2026/cong-van-01.pdf"),
        "Scans": data_dir(t / "scans", "scan-0001.tiff"),
        "empty": data_dir(t / "empty"),
        "skeleton": data_dir(t / "skeleton", ".bashrc", ".profile"),
        "remote": t / "nfs" / "share",
        "PRINT$": data_dir(t / "drivers", "W32X86/3/driver.dll"),
        "old": data_dir(t / "old", "archive.zip"),
    }
    data_dir(t / "nfs" / "share", "on-the-file-server.odt")  # what the NFS mount would show
    extra = f"[retired]\n   path = {shares['old']}\n   available = no\n"
    del shares["old"]
    smb = smb_conf(t / "smb.conf", {k: str(v) for k, v in shares.items()}, extra)
    home = t / "home"
    alice = data_dir(home / "alice", ".bashrc", "Documents/bao-cao.odt")
    data_dir(home / "bob", ".bashrc", ".profile", ".cache/thumbnails/x.png")
    data_dir(home / "carol", "Desktop/ke-hoach.xlsx")
    named = data_dir(t / "app-uploads", "avatar.jpg")

    found = discover(
        DiscoveryContext(
            proc_root=postmaster_view(t, pg_cluster),
            mounts_file=mount_table(t, t / "nfs"),
            postgresql_conf_dir=t / "etc-postgresql",
            mysql_conf=t / "my.cnf",
            smb_conf=smb,
            roots=(str(home),),
            paths=(str(named), str(t / "absent")),
            exclude=(str(home / "carol"),),
        ),
        DiscoveryLimits(),
    )

    assert found.incomplete == ""
    assert set(found.locations) == {
        DataLocation(os.path.realpath(pg_cluster.data), "postgresql", _pg_version(pg_cluster)),
        DataLocation(str(reports), "postgresql", "16/reports"),
        DataLocation(str(mysql), "mysql", ""),
        DataLocation(str(shares["docs"]), "samba", "docs"),
        DataLocation(str(shares["Scans"]), "samba", "Scans"),
        DataLocation(str(named), "configured", ""),
        DataLocation(str(alice), "home", "alice"),
    }


def _pg_version(cluster: Any) -> str:
    return (cluster.data / "PG_VERSION").read_text().strip()


def test_discovery_stops_at_its_file_bound_says_where_and_hides_nothing(tmp_path: Path) -> None:
    big = tmp_path / "big"
    for index in range(300):  # entries but no data: the walk must look at all of them
        (big / f"d{index:03}").mkdir(parents=True)
    after = data_dir(tmp_path / "after", "file.txt")
    empty = data_dir(tmp_path / "zz-empty")
    context = DiscoveryContext(
        proc_root=tmp_path / "no-proc",
        mysql_conf=tmp_path / "none",
        smb_conf=tmp_path / "none",
        postgresql_conf_dir=tmp_path / "none",
        roots=(),
        paths=(str(big), str(after), str(empty)),
    )

    bounded = discover(context, DiscoveryLimits(max_files=100))
    assert "stopped at " + str(big) in bounded.incomplete
    assert "max_files" in bounded.incomplete
    # What the bound kept it from looking at is counted, never silently dropped.
    assert [d.path for d in bounded.locations] == [str(after), str(big), str(empty)]

    unbounded = discover(context, DiscoveryLimits(max_files=10_000))
    assert unbounded.incomplete == ""
    assert [d.path for d in unbounded.locations] == [str(after)]

    ticks = itertools.count(0.0, 10.0)  # a clock ten seconds on at every look: the time bound
    timed = discover(context, DiscoveryLimits(max_seconds=5), clock=lambda: next(ticks))
    assert "max_duration" in timed.incomplete


# -- coverage ----------------------------------------------------------------------------


def coverage_source(tmp_path: Path, config: dict[str, Any], proc: Path) -> Any:
    return load_all()["coverage"].factory(
        Table(config, source="config test.toml"),
        SourceContext(host="db01", interval=15.0, state_dir=tmp_path / "state", proc_root=proc),
    )


def test_a_borg_archive_s_recorded_paths_cover_its_directories(tmp_path: Path) -> None:
    """borg's newest archive names what it holds on its create command line."""
    data = data_dir(tmp_path / "srv" / "ftp", "upload/x.bin")
    other = data_dir(tmp_path / "srv" / "www", "index.html")
    env = {"BORG_PASSPHRASE": "borg secret", "BORG_BASE_DIR": str(tmp_path / "borg-base")}
    (tmp_path / "borg-passphrase").write_text("borg secret\n")
    repo = tmp_path / "borg-repo"
    run("borg", "init", "-e", "repokey", str(repo), env=env)
    run("borg", "create", "--exclude", str(other), f"{repo}::one", str(data), env=env)
    job = {
        "name": "ftp-borg",
        "kind": "borg",
        "repository": str(repo),
        "password_file": str(tmp_path / "borg-passphrase"),
        "env": {"BORG_BASE_DIR": env["BORG_BASE_DIR"]},
        "restore_test_every": "0s",
    }
    backups = backup_source(tmp_path, job)
    try:
        collect(backups)
        assert backups.wait_rounds(1, timeout=120)
    finally:
        backups.close()
    # The excluded directory, named after --exclude, is not what the archive holds.
    assert recorded_paths(tmp_path / "state") == {"ftp-borg": (str(data),)}

    config = {
        "coverage": {
            "roots": [str(tmp_path / "srv")],
            "smb_conf": str(tmp_path / "none"),
            "mysql_conf": str(tmp_path / "none"),
            "postgresql_conf_dir": str(tmp_path / "none"),
        },
        "backup": [{"rpo": "26h", **job}],
    }
    source = coverage_source(tmp_path, config, tmp_path / "no-proc")
    try:
        source.start()
        assert source.wait_rounds(1, timeout=60)
        got = {d.path: (d.backed_up, d.covered_by) for d in collect(source).data_coverage.locations}
    finally:
        source.close()
    assert got == {str(data): (True, "ftp-borg"), str(other): (False, "")}


def test_a_dump_job_covers_its_database_by_kind_or_by_directory(tmp_path: Path) -> None:
    pg = data_dir(tmp_path / "pg" / "15" / "main", "PG_VERSION")
    conf = tmp_path / "etc-pg" / "15" / "main" / "postgresql.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"data_directory = '{pg}'\n")
    base = {
        "postgresql_conf_dir": str(tmp_path / "etc-pg"),
        "roots": [],
        "smb_conf": str(tmp_path / "none"),
        "mysql_conf": str(tmp_path / "none"),
    }
    for database, covered in (("postgresql", True), ("mysql", False), (str(pg.parent), True)):
        dump = {"name": "pg-dump", "kind": "push", "rpo": "26h", "database": database}
        source = coverage_source(
            tmp_path, {"coverage": base, "backup": [dump]}, tmp_path / "no-proc"
        )
        try:
            source.start()
            assert source.wait_rounds(1, timeout=60)
            (location,) = collect(source).data_coverage.locations
        finally:
            source.close()
        assert (location.path, location.kind, location.owner) == (str(pg), "postgresql", "15/main")
        assert location.backed_up is covered, database


GOOD = """\
[agent]
host = "db01"
department = "so-tu-phap"
state_dir = "{state}"
[collector]
addresses = ["127.0.0.1:4740"]
insecure = true
"""


GARBAGE = [
    ('[coverage]\ninterval = "soon"\n', "coverage.interval"),
    ('[coverage]\npaths = ["srv/data"]\n', "coverage.paths: entries must be absolute"),
    ('[coverage]\npaths = "/srv"\n', "coverage.paths: must be a list of strings"),
    ("[coverage]\nexclude = [1]\n", "coverage.exclude"),
    ('[coverage]\nroots = ["home"]\n', "coverage.roots: entries must be absolute"),
    ('[coverage]\nsmb_conf = "smb.conf"\n', "coverage.smb_conf: must be an absolute path"),
    ("[coverage]\nmysql_conf = 3\n", "coverage.mysql_conf: must be a string"),
    ('[coverage]\npostgresql_conf_dir = ""\n', "coverage.postgresql_conf_dir"),
    ("[coverage]\nmax_files = 0\n", "coverage.max_files: must be at least 1"),
    ('[coverage]\nmax_duration = "fast"\n', "coverage.max_duration"),
    ("[coverage]\nmax_dirs = 5\n", "coverage.max_dirs: unknown key"),
    (
        '[[backup]]\nname = "d"\nkind = "push"\nrpo = "1d"\ndatabase = "oracle"\n',
        "backup[0].database: must be one of postgresql, mysql",
    ),
]


def test_garbage_in_a_coverage_key_is_one_line_naming_it(tmp_path: Path) -> None:
    """Every new key, through the agent's own config loader (what check-config runs)."""
    config = tmp_path / "agent.toml"
    for garbage, fragment in GARBAGE:
        config.write_text(GOOD.format(state=tmp_path / "state") + garbage)
        with pytest.raises(ConfigError) as refused:
            load_config(config)
        message = str(refused.value)
        assert "\n" not in message and fragment in message, (garbage, message)


@pytest.mark.parametrize(("garbage", "fragment"), [GARBAGE[1], GARBAGE[-1]])
def test_check_config_says_it_in_one_line_and_exits_2(
    tmp_path: Path, garbage: str, fragment: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(GOOD.format(state=tmp_path / "state") + garbage)
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0], lines[0]


# -- the collector -----------------------------------------------------------------------


def test_the_collector_refuses_an_unknown_kind_or_a_location_twice(collector: Any) -> None:
    def report(sequence: int, *locations: tuple[str, str]) -> pb.Report:
        message = make_report(sequence)
        for path, kind in locations:
            message.data_coverage.locations.add(path=path, kind=kind)
        return message

    for bad in (
        report(1, ("/srv/a", "oracle")),
        report(1, ("/srv/a", "srv"), ("/srv/a", "srv")),
        report(1, ("srv/a", "srv")),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            submit(collector.grpc_address, [bad])
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    submit(collector.grpc_address, [report(1, ("/srv/a", "srv"))])
    wait_for(
        lambda: metric(collector.metrics(), "dcguard_data_location_backed_up", path="/srv/a") == 0,
        timeout=20,
        message="the good report's location on /metrics",
    )


# -- end to end --------------------------------------------------------------------------


def test_an_unbacked_share_is_named_by_risk_and_a_restic_snapshot_covers_the_database(
    tmp_path: Path, pg_cluster: Any, collector: Any, make_agent: Any
) -> None:
    """Agent → collector over gRPC → `dcguard-collector risk`: exactly the uncovered share."""
    docs = data_dir(tmp_path / "shares" / "docs", "cong-van.pdf")
    scans = data_dir(tmp_path / "shares" / "scans", "scan-0001.tiff")
    smb = smb_conf(tmp_path / "smb.conf", {"docs": str(docs), "scans": str(scans)})
    nightly = data_dir(tmp_path / "backup" / "docs", "docs-2026-12-06.tar.gz")
    pg_data = os.path.realpath(pg_cluster.data)
    # A snapshot of the cluster's directory (its big, changing parts left out: only what
    # the snapshot records as its paths matters here); the job's config names no source.
    password = tmp_path / "restic-password"
    password.write_text("correct horse battery staple\n")
    repo, cache = tmp_path / "restic-repo", tmp_path / "restic-cache"
    env = {
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(password),
        "RESTIC_CACHE_DIR": str(cache),
    }
    run("restic", "init", env=env)
    excludes = [f"--exclude={pg_data}/{part}" for part in ("base", "pg_wal", "pg_stat_tmp")]
    run("restic", "backup", *excludes, pg_data, env=env, ok=(0, 3))

    agent: Agent = make_agent(
        [collector.grpc_address],
        extra_config=f"""
[sources]
disable_defaults = true
backup = true
coverage = true

[coverage]
roots = []
smb_conf = "{smb}"
mysql_conf = "{tmp_path / "none"}"
postgresql_conf_dir = "{tmp_path / "none"}"

[[backup]]
name = "docs-nightly"
kind = "files"
rpo = "26h"
path = "{nightly}"
source = "{docs}"

[[backup]]
name = "pg-restic"
kind = "restic"
rpo = "26h"
repository = "{repo}"
password_file = "{password}"
restore_test_every = "0s"
env = {{ RESTIC_CACHE_DIR = "{cache}" }}
""",
    )
    view = postmaster_view(tmp_path, pg_cluster)
    text = agent.config_path.read_text()
    agent.config_path.write_text(text.replace("[agent]\n", f'[agent]\nproc_root = "{view}"\n'))
    agent.start()

    def covered() -> dict[str, float | None]:
        samples = collector.metrics()
        return {
            path: metric(samples, "dcguard_data_location_backed_up", path=path, **HOST)
            for path in (pg_data, str(docs), str(scans))
        }

    expected = {pg_data: 1.0, str(docs): 1.0, str(scans): 0.0}
    wait_for(lambda: covered() == expected, timeout=60, message=f"{expected} on /metrics")
    samples = collector.metrics()
    assert metric(samples, "dcguard_data_loss_risk", reason="data_not_backed_up", **HOST) == 1
    assert metric(samples, "dcguard_data_location_discovery_incomplete", **HOST) == 0
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=collector.metrics_text(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked

    result = collector.cli("risk", "--json")
    assert result.returncode == 0, result.stderr
    (host,) = [h for h in json.loads(result.stdout) if h["host"] == "testhost"]
    unbacked = [r["message"] for r in host["reasons"] if r["reason"] == "data_not_backed_up"]
    assert unbacked == [
        f"Samba share [scans] at {scans} is in no backup job - add it to a backup job's "
        "source, or name it in the database key of the job that dumps it"
    ]
    # On the server, what the agent sees, with the job covering each place.
    shown = agent.cli("collect")
    assert shown.returncode == 0, shown.stderr
    assert f"samba      {scans}  in no backup job" in shown.stdout
    assert f"samba      {docs}  backed up by 'docs-nightly'" in shown.stdout
    assert f"postgresql {pg_data}  backed up by 'pg-restic'" in shown.stdout
    vi = collector.cli("risk", "--lang", "vi")
    assert vi.returncode == 0, vi.stderr
    assert f"data_not_backed_up: thư mục chia sẻ Samba [scans] tại {scans} " in vi.stdout
