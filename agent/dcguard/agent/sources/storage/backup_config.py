"""The [[backup]] tables: one per backup job, checked by the backup source.

Keys every job has: name, kind (files, restic, borg, push), rpo, and
optionally min_size, source (the data the backup protects), database (the
database server a dump job dumps), check_every and timeout. Kind-specific
keys are rejected on other kinds, so a restic setting on a files job is a
config error instead of silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from dcguard.common.config import Table
from dcguard.common.i18n import tr

__all__ = ["DATABASES", "DECLARED_LOCATIONS", "KINDS", "BackupJob", "parse_backups"]

KINDS = ("files", "restic", "borg", "push")
# What a dump job's `database` names: every data directory of that server on this host.
DATABASES = ("postgresql", "mysql")
# Where a copy lives that the agent cannot see for itself: a tape or disk taken
# off-site, or a repository that cannot be deleted (object lock, append-only).
DECLARED_LOCATIONS = ("offline", "immutable")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DRILL_KEYS = (
    "restore_test_every",
    "restore_test_max_bytes",
    "restore_test_max_files",
    "restore_test_dir",
)
# A files job's newest dump or archive is read to its end once, up to this size.
FILES_CHECK_MAX_BYTES = 4 * 1024**3
# A drill names every sampled file on restic's/borg's command line: keep argv short.
MAX_DRILL_FILES = 1000
_KIND_KEYS = {
    "files": ("path", "restore_test_max_bytes"),
    "restic": (
        "repository",
        "binary",
        "password_file",
        "password_command",
        "env",
        "verify_every",
        "verify_data",
        "verify_read_bytes",
        "host",
        "tags",
        "paths",
        *_DRILL_KEYS,
    ),
    "borg": (
        "repository",
        "binary",
        "password_file",
        "password_command",
        "env",
        "verify_every",
        "verify_data",
        "glob_archives",
        *_DRILL_KEYS,
    ),
    "push": ("path",),
}
_ALL_KIND_KEYS = {key for keys in _KIND_KEYS.values() for key in keys}
# Local files are cheap to look at; repositories (restic, borg) take BackupJob's default.
_CHECK_EVERY = {"files": 60.0, "push": 60.0}


@dataclass(frozen=True)
class BackupJob:
    name: str
    kind: str
    rpo: float
    min_size: int = 0
    source: str = ""
    # A dump job: "postgresql"/"mysql" (every cluster of that server here) or one data
    # directory; the data locations it names count as covered (coverage.py).
    database: str = ""
    copy_location: str = ""  # declared: "offline" / "immutable"; "": detected
    check_every: float = 300.0
    timeout: float = 600.0
    path: str = ""
    repository: str = ""
    binary: str = ""
    password_file: str = ""
    password_command: str = ""
    env: dict[str, str] = field(default_factory=dict)
    verify_every: float = 0.0
    verify_data: bool = False
    # restic: each check also reads back a random subset of packs this big
    # (--read-data-subset), so "verified" means data was read; 0: index only.
    verify_read_bytes: int = 256 * 1024 * 1024
    # Which snapshots are this job's, in a repository shared by hosts or jobs.
    host: str = ""
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    glob_archives: str = ""
    # Restore drills (restore_drill.py): a random sample of the newest snapshot restored
    # and compared with the source every restore_test_every (0: never).
    restore_test_every: float = 7 * 86400.0
    restore_test_max_bytes: int = 128 * 1024 * 1024
    restore_test_max_files: int = 100
    restore_test_dir: str = ""  # "": <state_dir>/restore-drill


def _env(table: Table) -> dict[str, str]:
    env = table.table("env")
    values: dict[str, str] = {}
    for key in env.key_names():
        if not _ENV_NAME.fullmatch(key):  # `$` would pass a final newline
            raise env.error(key, tr("is not a valid environment variable name"))
        values[key] = env.string(key, allow_empty=True)
    env.finish()
    return values


def _job(table: Table) -> BackupJob:
    name = table.string("name")
    if not _NAME.fullmatch(name):  # `$` would pass a final newline
        raise table.error(
            "name",
            tr(
                "must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit, got {value}",
                value=repr(name),
            ),
        )
    kind = table.string("kind")
    if kind not in KINDS:
        raise table.error(
            "kind",
            tr("must be one of {choices}, got {value}", choices=", ".join(KINDS), value=repr(kind)),
        )
    for key in sorted(_ALL_KIND_KEYS - set(_KIND_KEYS[kind])):
        if table.has(key):
            raise table.error(key, tr("does not apply to kind {kind}", kind=repr(kind)))
    job = BackupJob(
        name=name,
        kind=kind,
        rpo=table.duration("rpo", minimum=1.0),
        min_size=table.size("min_size", BackupJob.min_size),
        source=table.string("source", ""),
        database=_database(table),
        copy_location=_declared_location(table),
        check_every=table.duration(
            "check_every", _CHECK_EVERY.get(kind, BackupJob.check_every), minimum=1.0
        ),
        timeout=table.duration("timeout", BackupJob.timeout, minimum=0.1),
        path=table.string("path", "") if kind in ("files", "push") else "",
    )
    if kind in ("restic", "borg"):
        job = _with_repository(table, job)
    if kind == "files":
        job = replace(
            job,
            restore_test_max_bytes=table.size(
                "restore_test_max_bytes", FILES_CHECK_MAX_BYTES, minimum=1
            ),
        )
    if kind == "files" and not job.path:
        raise table.error("path", tr("is required for kind 'files' (a directory or a glob)"))
    table.finish()
    return job


def _with_repository(table: Table, job: BackupJob) -> BackupJob:
    password_file = table.string("password_file", "")
    password_command = table.string("password_command", "")
    if password_file and password_command:
        raise table.error(
            "password_command", tr("give password_file or password_command, not both")
        )
    return replace(
        job,
        repository=table.string("repository"),
        binary=table.string("binary", job.kind),
        password_file=password_file,
        password_command=password_command,
        env=_env(table),
        verify_every=table.duration("verify_every", BackupJob.verify_every),
        verify_data=table.boolean("verify_data", BackupJob.verify_data),
        verify_read_bytes=(
            table.size("verify_read_bytes", BackupJob.verify_read_bytes)
            if job.kind == "restic"
            else 0
        ),
        host=table.string("host", "") if job.kind == "restic" else "",
        tags=tuple(table.string_list("tags", [])) if job.kind == "restic" else (),
        paths=tuple(table.string_list("paths", [])) if job.kind == "restic" else (),
        glob_archives=table.string("glob_archives", "") if job.kind == "borg" else "",
        restore_test_every=table.duration("restore_test_every", BackupJob.restore_test_every),
        restore_test_max_bytes=table.size(
            "restore_test_max_bytes", BackupJob.restore_test_max_bytes, minimum=1
        ),
        restore_test_max_files=_drill_files(table),
        restore_test_dir=_drill_dir(table),
    )


def _declared_location(table: Table) -> str:
    value = table.string("copy_location", "")
    return table.check(
        "copy_location",
        value,
        lambda v: v in ("", *DECLARED_LOCATIONS),
        lambda: tr(
            "must be one of {choices} (or left out to detect it), got {value}",
            choices=", ".join(DECLARED_LOCATIONS),
            value=repr(value),
        ),
    )


def _database(table: Table) -> str:
    value = table.string("database", "")
    return table.check(
        "database",
        value,
        lambda v: not v or v in DATABASES or v.startswith("/"),
        lambda: tr(
            "must be one of {choices} or the absolute path of a data directory, got {value}",
            choices=", ".join(DATABASES),
            value=repr(value),
        ),
    )


def _drill_files(table: Table) -> int:
    count = table.integer("restore_test_max_files", BackupJob.restore_test_max_files, minimum=1)
    return table.check(
        "restore_test_max_files",
        count,
        lambda n: n <= MAX_DRILL_FILES,
        lambda: tr("must be at most {maximum}, got {value}", maximum=MAX_DRILL_FILES, value=count),
    )


def _drill_dir(table: Table) -> str:
    directory = table.string("restore_test_dir", "")
    return table.check(
        "restore_test_dir",
        directory,
        lambda d: not d or d.startswith("/"),
        lambda: tr("must be an absolute path, got {value}", value=repr(directory)),
    )


def parse_backups(config: Table) -> list[BackupJob]:
    """Every [[backup]] job; names must be unique."""
    jobs: list[BackupJob] = []
    seen: set[str] = set()
    for table in config.table_list("backup"):
        job = _job(table)
        if job.name in seen:
            raise table.error(
                "name", tr("{name} is used by another [[backup]] job", name=repr(job.name))
            )
        seen.add(job.name)
        jobs.append(job)
    return jobs
