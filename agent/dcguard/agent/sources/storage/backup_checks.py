"""What one backup job's check finds: its latest run, size, and verification.

files: the newest file under a directory or glob. restic/borg: the latest
snapshot/archive and its size, read from the real repository with the
tool; verification runs `restic check` / `borg check`. Each function
returns a RunResult or raises CheckError with one line for the operator;
tool output is never trusted to have the shape we expect.
"""

from __future__ import annotations

import glob
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcguard.agent.sources.storage.backup_config import BackupJob
from dcguard.agent.sources.storage.isotime import parse_iso_time
from dcguard.agent.sources.storage.tools import ToolError, ToolResult, error_line, run_tool

__all__ = [
    "LOCKED",
    "CheckError",
    "RunResult",
    "VerifyResult",
    "borg_create_paths",
    "check_files",
    "check_repository",
    "tool_environment",
    "verify_repository",
]

MAX_FILES_SCANNED = 200_000  # a backup directory is walked, but not forever
# restic: "unable to create lock in backend: repository is already locked by PID ...";
# borg: "Failed to create/acquire the lock ...". Not "create exclusive lock", printed always.
_GLOB_MAGIC = re.compile(r"[*?\[]")
LOCKED = re.compile(r"already locked|unable to create lock|Failed to create/acquire the lock")


class CheckError(Exception):
    """The job could not be checked (tool missing, repository unreadable, ...)."""


@dataclass(frozen=True)
class RunResult:
    last_run: float | None  # None: never ran
    last_run_success: bool
    last_success: float | None
    size_bytes: int | None  # None: not readable right now (keep the last known)
    message: str = ""
    snapshot: str = ""  # restic snapshot id / borg archive, to reuse its size
    # The paths the snapshot/archive recorded (restic's `paths`, borg's create command
    # line): what it really holds, for coverage. () when unknown or a files job.
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    at: float
    success: bool
    message: str


# -- files ---------------------------------------------------------------------------


def _candidates(path: str) -> list[Path]:
    if _GLOB_MAGIC.search(path):
        base = Path(_GLOB_MAGIC.split(path, maxsplit=1)[0]).parent
        if not base.exists():
            raise CheckError(f"{base} does not exist (backup disk not mounted?)")
        # Path.glob takes no absolute patterns; the operator writes an absolute one.
        return [Path(name) for name in glob.glob(path, recursive=True)]  # noqa: PTH207
    root = Path(path)
    if root.is_dir():
        found: list[Path] = []
        for entry in root.rglob("*"):
            found.append(entry)
            if len(found) > MAX_FILES_SCANNED:
                raise CheckError(
                    f"{path} holds more than {MAX_FILES_SCANNED} entries; "
                    "point path at a narrower directory or glob"
                )
        return found
    if root.exists():
        return [root]
    raise CheckError(f"{path} does not exist (backup disk not mounted?)")


def check_files(job: BackupJob) -> RunResult:
    """The newest regular file is the latest run; one smaller than min_size failed.

    The newest file's path is the result's snapshot: its content is checked once.
    """
    stats: list[tuple[float, int, str]] = []
    for entry in _candidates(job.path):
        try:
            st = entry.stat()
        except OSError:
            continue  # removed while we looked
        if stat.S_ISREG(st.st_mode):
            stats.append((st.st_mtime, st.st_size, str(entry)))
    if not stats:
        return RunResult(None, False, None, 0, f"no files match {job.path}")
    stats.sort()
    newest_time, newest_size, newest = stats[-1]
    good = [t for t, size, _ in stats if size >= job.min_size]
    ok = newest_size >= job.min_size
    message = "" if ok else f"newest file is {newest_size} bytes, below min_size {job.min_size}"
    return RunResult(
        newest_time, ok, good[-1] if good else None, newest_size, message, snapshot=newest
    )


# -- restic and borg -----------------------------------------------------------------


def tool_environment(job: BackupJob) -> dict[str, str]:
    """The variables restic/borg need for this job's repository and password."""
    env = dict(job.env)
    if job.kind == "restic":
        env["RESTIC_REPOSITORY"] = job.repository
        if job.password_file:
            env["RESTIC_PASSWORD_FILE"] = job.password_file
        if job.password_command:
            env["RESTIC_PASSWORD_COMMAND"] = job.password_command
    else:
        # Read-only questions: answer borg's "are you sure" prompts instead of hanging.
        env.setdefault("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        env.setdefault("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        if job.password_command:
            env["BORG_PASSCOMMAND"] = job.password_command
        if job.password_file:
            try:
                env["BORG_PASSPHRASE"] = Path(job.password_file).read_text().rstrip("\n")
            except OSError as exc:
                raise CheckError(
                    f"cannot read password_file {job.password_file}: {exc.strerror or exc}"
                ) from None
    return env


def _run(job: BackupJob, *args: str) -> ToolResult:
    try:
        return run_tool([job.binary, *args], job.timeout, tool_environment(job))
    except ToolError as exc:
        raise CheckError(str(exc)) from None


def _json(job: BackupJob, *args: str) -> Any:
    result = _run(job, *args)
    if result.returncode != 0:
        raise CheckError(
            f"{job.kind} {args[0]} exited with {result.returncode}: "
            f"{error_line(result.stderr) or 'no message'}"
        )
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise CheckError(f"{job.kind} {args[0]} printed invalid JSON") from None


# (time, snapshot, size or None when not readable now, recorded paths)
_Latest = tuple[float, str, "int | None", tuple[str, ...]]
# What is known of a snapshot already: its size and recorded paths.
_Known = dict[str, tuple[int, tuple[str, ...]]]
# borg create options that take a value: the word after them is not a path to back up.
_BORG_VALUE_OPTIONS = frozenset(
    (
        "-e",
        "--exclude",
        "--exclude-from",
        "--pattern",
        "--patterns-from",
        "--comment",
        "-C",
        "--compression",
        "--timestamp",
        "--chunker-params",
        "--exclude-if-present",
        "--files-cache",
        "--remote-path",
        "--rsh",
        "--lock-wait",
        "--upload-ratelimit",
        "--upload-buffer",
        "-c",
        "--checkpoint-interval",
        "--stdin-name",
        "--paths-from-command",
    )
)


def _recorded(value: Any) -> tuple[str, ...]:
    """Absolute paths from a tool's JSON list; anything else in it is ignored."""
    if not isinstance(value, list):
        return ()
    return tuple(p for p in value if isinstance(p, str) and p.startswith("/"))[:256]


def borg_create_paths(command_line: Any) -> tuple[str, ...]:
    """The absolute PATH arguments of a recorded `borg create` command line."""
    if not isinstance(command_line, list) or not all(isinstance(a, str) for a in command_line):
        return ()
    after = [i for i, arg in enumerate(command_line) if "::" in arg and not arg.startswith("-")]
    if not after:
        return ()
    paths: list[str] = []
    words = command_line[after[0] + 1 :]
    for index, arg in enumerate(words):
        previous = words[index - 1] if index else ""
        if arg.startswith("/") and previous not in _BORG_VALUE_OPTIONS:
            paths.append(arg)
    return _recorded(paths)


def _restic_latest(job: BackupJob, known: _Known) -> _Latest | None:
    filters: list[str] = ["--host", job.host] if job.host else []
    if job.tags:
        filters += ["--tag", ",".join(job.tags)]
    for path in job.paths:
        filters += ["--path", path]
    snapshots = _json(job, "snapshots", "--json", "--latest", "1", "--no-lock", *filters)
    if not isinstance(snapshots, list):
        raise CheckError("restic snapshots printed JSON that is not a list")
    best: tuple[float, str, tuple[str, ...]] | None = None
    for snap in snapshots:
        try:
            when, ident = parse_iso_time(snap["time"]), str(snap["id"])
        except (TypeError, KeyError, ValueError):
            raise CheckError(
                "restic snapshots printed a snapshot without a valid time or id"
            ) from None
        if best is None or when > best[0]:
            best = (when, ident, _recorded(snap.get("paths")))
    if best is None:
        return None
    if best[1] in known:  # restic stats walks every tree: once per snapshot is enough
        return best[0], best[1], known[best[1]][0], best[2]
    stats = _json(job, "stats", "--json", "--no-lock", best[1])
    size = stats.get("total_size") if isinstance(stats, dict) else None
    if isinstance(size, bool) or not isinstance(size, int):
        raise CheckError("restic stats printed no total_size")
    return best[0], best[1], size, best[2]


def _borg_latest(job: BackupJob, known: _Known) -> _Latest | None:
    # list reads only the repository's manifest: safe without the lock while a backup runs.
    filters = ["--glob-archives", job.glob_archives] if job.glob_archives else []
    listing = _json(job, "list", "--json", "--last", "1", "--bypass-lock", *filters, job.repository)
    archives = listing.get("archives") if isinstance(listing, dict) else None
    if not isinstance(archives, list):
        raise CheckError("borg list printed no archives list")
    if not archives:
        return None
    try:
        name = str(archives[-1]["name"])
        when = parse_iso_time(archives[-1].get("start") or archives[-1]["time"])
    except (TypeError, KeyError, ValueError, AttributeError):
        raise CheckError("borg list printed an archive without a valid name or time") from None
    ident = f"{name} {archives[-1].get('id', '')}"
    if ident in known:
        return when, ident, *known[ident]
    # info opens borg's cache, shared with the backup job: it takes the lock like any
    # borg command instead of bypassing it. Locked by a running backup: size unknown now.
    lock_wait = str(max(1, int(min(10.0, job.timeout / 2))))
    result = _run(job, "info", "--json", "--lock-wait", lock_wait, f"{job.repository}::{name}")
    if result.returncode != 0 and LOCKED.search(result.stderr):
        return when, ident, None, ()
    if result.returncode != 0:
        raise CheckError(
            f"borg info exited with {result.returncode}: "
            f"{error_line(result.stderr) or 'no message'}"
        )
    try:
        archive = json.loads(result.stdout)["archives"][0]
        size = archive["stats"]["original_size"]
    except (ValueError, TypeError, KeyError, IndexError):
        raise CheckError("borg info printed no archive stats") from None
    if isinstance(size, bool) or not isinstance(size, int):
        raise CheckError("borg info printed no archive stats")
    return when, ident, size, borg_create_paths(archive.get("command_line"))


def check_repository(job: BackupJob, previous: RunResult | None = None) -> RunResult:
    """The latest snapshot/archive as the latest (successful) run.

    Its size is read once per snapshot: previous carries the size already
    known for a snapshot id, so a big remote repository is not walked every check.
    """
    known: _Known = {}
    if previous is not None and previous.snapshot and previous.size_bytes is not None:
        known[previous.snapshot] = (previous.size_bytes, previous.paths)
    latest = _restic_latest(job, known) if job.kind == "restic" else _borg_latest(job, known)
    if latest is None:
        return RunResult(None, False, None, 0, "the repository holds no snapshots")
    when, snapshot, size, paths = latest
    if size is not None and size < job.min_size:
        return RunResult(
            when,
            False,
            None,
            size,
            f"latest snapshot is {size} bytes, below min_size {job.min_size}",
            snapshot=snapshot,
            paths=paths,
        )
    return RunResult(when, True, when, size, snapshot=snapshot, paths=paths)


def verify_repository(job: BackupJob, now: float) -> VerifyResult:
    """`restic check` / `borg check`: a non-zero exit is a failed verification.

    A repository locked by a running backup is not a verdict: CheckError, so
    the last result stands and the check is tried again later.
    """
    args = ["check"]
    if job.verify_data:
        args.append("--read-data" if job.kind == "restic" else "--verify-data")
    elif job.verify_read_bytes:
        # A random subset of packs, read and hashed: a pack corrupted in place with its
        # size unchanged passes the index-only check.
        # restic takes a size only with a unit suffix: K (1024 bytes), rounded up.
        args.append(f"--read-data-subset={-(-job.verify_read_bytes // 1024)}K")
    if job.kind == "borg":
        args.append(job.repository)
    result = _run(job, *args)
    if result.returncode == 0:
        return VerifyResult(now, True, "")
    if LOCKED.search(result.stderr + result.stdout):
        raise CheckError(
            f"{job.kind} check could not lock the repository (a backup "
            f"running?): {error_line(result.stderr)}"
        )
    return VerifyResult(
        now,
        False,
        f"{job.kind} check exited with {result.returncode}: "
        f"{error_line(result.stderr, result.stdout) or 'no message'}",
    )
