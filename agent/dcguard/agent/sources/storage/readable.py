"""Is a dump or archive readable to its end? The restore test of a `files` job.

A truncated dump is the classic silent data loss: the file is there, fresh
and big, and would not restore. By content, within a byte budget:
gzip/bzip2/xz streams are read to the end (zstd with `zstd -t` when installed),
tar and zip archives are listed (zip members' CRCs checked), a PostgreSQL
custom-format dump is read whole by `pg_restore --file=/dev/null` (`--list`
reads only its table of contents), a plain SQL dump must
end with its tool's completion line, and an SQLite copy must pass
`PRAGMA integrity_check` opened read-only. A file of another type gets no
verdict (None), and neither does one whose check cannot run here (a note says why).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import sqlite3
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Optional

from dcguard.agent.sources.storage.tools import ToolError, error_line, low_priority, run_tool

__all__ = ["Verdict", "check_readable"]

# (ok, what is wrong or why there is no verdict); ok None: no verdict.
Verdict = tuple[Optional[bool], str]

_OPENERS: dict[str, Callable[..., Any]] = {
    ".gz": gzip.open,
    ".tgz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
_TAIL = 4096
# A plain SQL dump's first lines name its tool; its last lines must hold the tool's
# completion line, written only after the last table.
_SQL_TOOLS = (
    (b"-- MySQL dump", "mysqldump", b"-- Dump completed"),
    (b"-- MariaDB dump", "mariadb-dump", b"-- Dump completed"),
    (b"-- PostgreSQL database dump", "pg_dump", b"-- PostgreSQL database dump complete"),
)


class _TooBig(Exception):
    pass


class _Budget:
    """Counts the bytes read from a stream and stops past the limit."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.limit, self.read_bytes = stream, limit, 0
        self.head, self.tail = b"", b""

    def drain(self) -> None:
        for block in iter(lambda: self.stream.read(1024 * 1024), b""):
            self.read_bytes += len(block)
            if not self.head:
                self.head = block[:_TAIL]
            self.tail = (self.tail + block)[-_TAIL:]
            if self.read_bytes > self.limit:
                raise _TooBig


def _sql_verdict(name: str, head: bytes, tail: bytes) -> Verdict:
    for header, tool, completion in _SQL_TOOLS:
        if header in head[:1024]:
            if completion in tail:
                return True, ""
            return False, (f"{name} ends without {tool}'s completion line: the dump was cut off")
    return None, f"{name}: not a mysqldump, mariadb-dump or pg_dump plain dump"


def _decompressed(path: Path, limit: int, _timeout: float) -> Verdict:
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    inner = ".tar" if suffixes[-1] == ".tgz" else (suffixes[0] if len(suffixes) > 1 else "")
    try:
        with _OPENERS[suffixes[-1]](path, "rb") as stream:
            if inner in (".tar", ".tgz"):
                with tarfile.open(fileobj=stream, mode="r|") as archive:
                    for _member in archive:
                        pass
                return True, ""
            budget = _Budget(stream, limit)
            budget.drain()
    except _TooBig:
        return None, f"{path.name}: more than {limit} bytes to read; not checked"
    except (OSError, EOFError, ValueError, tarfile.TarError, lzma.LZMAError) as exc:
        return False, f"{path.name} cannot be read to its end: {_why(exc)}"
    if inner == ".sql":
        return _sql_verdict(path.name, budget.head, budget.tail)
    return True, ""


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return "the file is truncated (" + text + ")"
    return text


def _plain_sql(path: Path, _limit: int, _timeout: float) -> Verdict:
    with path.open("rb") as stream:
        head = stream.read(_TAIL)
        stream.seek(max(0, path.stat().st_size - _TAIL))
        tail = stream.read()
    return _sql_verdict(path.name, head, tail)


def _sqlite(path: Path, _limit: int, _timeout: float) -> Verdict:
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            # At most a few problems: the first names the damage, the count tells its extent.
            rows = connection.execute("PRAGMA integrity_check(20)").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return False, f"{path.name} is not a readable SQLite database: {exc}"
    # SQLite prefixes the problems with "*** in database main ***" and may join several
    # with newlines in one row.
    problems = [
        line.strip()
        for row in rows
        if row and row[0] != "ok"
        for line in str(row[0]).splitlines()
        if line.strip() and not line.startswith("*** in database")
    ]
    if problems:
        return False, (
            f"{path.name} fails SQLite's integrity check: {problems[0][:200]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return True, ""


def _tool(path: Path, argv: list[str], timeout: float, what: str) -> Verdict:
    if shutil.which(argv[0]) is None:
        return None, f"{path.name}: {argv[0]} is not installed; {what} not checked"
    try:
        result = run_tool(low_priority(argv), timeout)
    except ToolError as exc:
        return None, f"{path.name}: {exc}"
    if result.returncode != 0:
        return False, (
            f"{path.name} cannot be read: {argv[0]} exited with {result.returncode}: "
            f"{error_line(result.stderr, result.stdout) or 'no message'}"
        )
    return True, ""


def _zstd(path: Path, _limit: int, timeout: float) -> Verdict:
    return _tool(path, ["zstd", "-t", "-q", str(path)], timeout, "the zstd stream")


def _pg_custom(path: Path, _limit: int, timeout: float) -> Verdict:
    # Not `pg_restore --list`: it reads only the table of contents at the start, and a
    # dump cut in its data passes it. Converting the whole archive to SQL (thrown away,
    # no database needed) reads every block to the end.
    return _tool(
        path,
        ["pg_restore", "--file=/dev/null", str(path)],
        timeout,
        "the PostgreSQL custom-format dump",
    )


def _tar(path: Path, _limit: int, _timeout: float) -> Verdict:
    with tarfile.open(path, "r:") as archive:
        archive.getmembers()
    return True, ""


def _zip(path: Path, _limit: int, _timeout: float) -> Verdict:
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    return (False, f"{path.name}: member {bad} fails its CRC check") if bad else (True, "")


Checker = Callable[[Path, int, float], Verdict]
_BY_SUFFIX: dict[str, Checker] = {
    **dict.fromkeys(_OPENERS, _decompressed),
    ".zst": _zstd,
    ".tar": _tar,
    ".zip": _zip,
}


def _checker(path: Path, magic: bytes) -> Checker | None:
    """The check for this file: by its name, else by its first bytes."""
    suffix = path.suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if magic.startswith(b"PGDMP"):
        return _pg_custom
    if suffix == ".sql":
        return _plain_sql
    if magic.startswith(b"SQLite format 3\x00"):
        return _sqlite
    return None


def check_readable(path: Path, max_bytes: int, timeout: float) -> Verdict:
    """Whether path reads to its end as its type promises; (None, note) without a verdict."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return None, f"{path.name}: {size} bytes, over the {max_bytes}-byte budget; not checked"
        with path.open("rb") as stream:
            magic = stream.read(16)
        check = _checker(path, magic)
        if check is None:
            return None, f"{path.name}: no content check for this type of file"
        return check(path, max_bytes, timeout)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        return False, f"{path.name} cannot be listed: {_why(exc)}"
    except OSError as exc:
        return None, f"{path.name}: cannot be read: {exc.strerror or exc}"
