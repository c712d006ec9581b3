"""A private PostgreSQL cluster for tests: Debian's server binaries, a temp dir, a loopback port.

The cluster is made with initdb and run with pg_ctl by an unprivileged
user (PostgreSQL refuses to run as root: `nobody`, through runuser, when
the tests run as root), listens only on 127.0.0.1 (no Unix socket), asks
for a password (scram-sha-256) like a real deployment, and is stopped and
removed when the fixture ends, pass or fail. Each test gets a database of
its own in it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from dcguard.collector.store import PostgresDatabase

PASSWORD = "test-password-not-secret"  # noqa: S105 - a throwaway cluster's
SUPERUSER = "dcguard"
_NAMES = itertools.count(1)


def server_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian's layout), if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One running private cluster; database() makes a fresh database in it."""

    # Tests need no durability, only speed; a benchmark comparing with SQLite's
    # synchronous=FULL turns fsync on.
    fsync = "off"

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="dcguard-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password_file = self.root / "password"
        self.port = 0
        self._user = "nobody" if os.geteuid() == 0 else None

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )

    def start(self) -> None:
        self.password_file.write_text(PASSWORD + "\n")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(self.password_file, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        made = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={self.password_file}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stderr.strip()}")
        for _ in range(3):  # a port taken between choosing and binding: choose again
            self.port = _free_port()
            started = self._pg_ctl_start()
            if started.returncode == 0:
                return
        raise RuntimeError(
            f"pg_ctl start failed: {started.stderr.strip()} "
            f"{self.log.read_text(errors='replace')[-2000:]}"
        )

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories='' -c fsync={self.fsync} -c max_connections=200"
        )
        return self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def crash(self) -> None:
        """The server goes away at once, as a crashed or unplugged database does."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "immediate",
            "-w",
            "-t",
            "30",
            "stop",
        )

    def restart(self) -> None:
        """Start it again on the same port (after crash)."""
        started = self._pg_ctl_start()
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}")

    def stop(self) -> None:
        if self.data.exists():
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
                "stop",
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn(), password=PASSWORD, autocommit=True)

    def database(self) -> PostgresDatabase:
        """A new empty database, as a collector's [store] would name it."""
        name = f"t{os.getpid()}_{next(_NAMES)}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name}")
        return PostgresDatabase(self.dsn(name), PASSWORD)

    def query(
        self, database: PostgresDatabase, sql: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        """Rows of one query on a test database (the test's own look at what was stored)."""
        with psycopg.connect(database.dsn, password=PASSWORD, autocommit=True) as db:
            return db.execute(sql, params).fetchall()  # type: ignore[arg-type]


def stored_events(database: PostgresDatabase) -> list[dict[str, object]]:
    """Every stored event row, read straight from a PostgreSQL store (as security_helpers')."""
    import json

    with psycopg.connect(database.dsn, password=database.password, autocommit=True) as db:
        cursor = db.execute("SELECT * FROM security_events ORDER BY id")
        names = [d.name for d in cursor.description or ()]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    for row in rows:
        row["details"] = json.loads(str(row["details"]))
    return rows


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A started private cluster, stopped and removed afterwards whatever happens."""
    bindir = server_bin()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql "
            "(tests/run.sh installs Debian's postgresql)"
        )
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
