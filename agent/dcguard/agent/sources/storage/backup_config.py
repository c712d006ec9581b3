"""The [[backup]] tables: one per backup job, checked by the backup source.

Keys every job has: name, kind (files, restic, borg, push), rpo, and
optionally min_size, source (the data the backup protects), check_every
and timeout. Kind-specific keys are rejected on other kinds, so a restic
setting on a files job is a config error instead of silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from dcguard.common.config import Table

__all__ = ["KINDS", "BackupJob", "parse_backups", "parse_size"]

KINDS = ("files", "restic", "borg", "push")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|K|KiB|M|MiB|G|GiB|T|TiB|KB|MB|GB|TB)?$")
_UNITS = {None: 1, "B": 1, "K": 2**10, "KiB": 2**10, "M": 2**20, "MiB": 2**20, "G": 2**30,
          "GiB": 2**30, "T": 2**40, "TiB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "TB": 10**12}
_KIND_KEYS = {
    "files": ("path",),
    "restic": ("repository", "binary", "password_file", "password_command", "env",
               "verify_every", "verify_data", "host", "tags", "paths"),
    "borg": ("repository", "binary", "password_file", "password_command", "env",
             "verify_every", "verify_data", "glob_archives"),
    "push": ("path",),
}
_ALL_KIND_KEYS = {key for keys in _KIND_KEYS.values() for key in keys}


def parse_size(text: str) -> int:
    """Bytes in "500M", "2GiB", "1.5G" (K/M/G/T are powers of 1024, KB/MB/GB/TB of 1000)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(f'not a size like "500M", "2GiB" or "10GB": {text!r}')
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class BackupJob:
    name: str
    kind: str
    rpo: float
    min_size: int = 0
    source: str = ""
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
    # Which snapshots are this job's, in a repository shared by hosts or jobs.
    host: str = ""
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    glob_archives: str = ""


def _size(table: Table, key: str) -> int:
    if not table.has(key):
        return 0
    raw = table.raw(key)
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise table.error(key, f'must be a byte count or a size like "500M", got {raw!r}')
    if isinstance(raw, int):
        if raw < 0:
            raise table.error(key, f"must not be negative, got {raw}")
        return raw
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None


def _env(table: Table) -> dict[str, str]:
    env = table.table("env")
    values: dict[str, str] = {}
    for key in env.key_names():
        if not _ENV_NAME.fullmatch(key):  # `$` would pass a final newline
            raise env.error(key, "is not a valid environment variable name")
        values[key] = env.string(key, allow_empty=True)
    env.finish()
    return values


def _job(table: Table) -> BackupJob:
    name = table.string("name")
    if not _NAME.fullmatch(name):  # `$` would pass a final newline
        raise table.error("name", "must be 1-64 letters, digits, '.', '_' or '-', starting "
                          f"with a letter or digit, got {name!r}")
    kind = table.string("kind")
    if kind not in KINDS:
        raise table.error("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    for key in sorted(_ALL_KIND_KEYS - set(_KIND_KEYS[kind])):
        if table.has(key):
            raise table.error(key, f"does not apply to kind {kind!r}")
    default_check = "1m" if kind in ("files", "push") else "5m"
    job = BackupJob(
        name=name, kind=kind,
        rpo=table.duration("rpo", minimum=1.0),
        min_size=_size(table, "min_size"),
        source=table.string("source", ""),
        check_every=table.duration("check_every", default_check, minimum=1.0),
        timeout=table.duration("timeout", "10m", minimum=0.1),
        path=table.string("path", "") if kind in ("files", "push") else "",
    )
    if kind in ("restic", "borg"):
        job = _with_repository(table, job)
    if kind == "files" and not job.path:
        raise table.error("path", "is required for kind 'files' (a directory or a glob)")
    table.finish()
    return job


def _with_repository(table: Table, job: BackupJob) -> BackupJob:
    password_file = table.string("password_file", "")
    password_command = table.string("password_command", "")
    if password_file and password_command:
        raise table.error("password_command", "give password_file or password_command, "
                          "not both")
    return replace(
        job, repository=table.string("repository"), binary=table.string("binary", job.kind),
        password_file=password_file, password_command=password_command, env=_env(table),
        verify_every=table.duration("verify_every", "0"),
        verify_data=table.boolean("verify_data", False),
        host=table.string("host", "") if job.kind == "restic" else "",
        tags=tuple(table.string_list("tags", [])) if job.kind == "restic" else (),
        paths=tuple(table.string_list("paths", [])) if job.kind == "restic" else (),
        glob_archives=table.string("glob_archives", "") if job.kind == "borg" else "",
    )


def parse_backups(config: Table) -> list[BackupJob]:
    """Every [[backup]] job; names must be unique."""
    jobs: list[BackupJob] = []
    seen: set[str] = set()
    for table in config.table_list("backup"):
        job = _job(table)
        if job.name in seen:
            raise table.error("name", f"{job.name!r} is used by another [[backup]] job")
        seen.add(job.name)
        jobs.append(job)
    return jobs
