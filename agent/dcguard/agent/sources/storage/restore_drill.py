"""Restore drills: prove a restic/borg job's newest snapshot gives its files back.

A random sample of regular files (at most restore_test_max_files, together at
most restore_test_max_bytes) is restored from the newest snapshot into a
private directory and compared with the source: size and SHA-256 for every
file whose source still has the snapshot's size and mtime; a source changed
(or gone) since the snapshot cannot be compared and is skipped, not counted as
a mismatch. restic and borg authenticate every chunk they restore, so a pack
corrupted in place fails the restore itself.

The drill writes only inside its own directory (never into the source or the
repository), runs restic/borg at low CPU and I/O priority, refuses to start
when the directory's filesystem lacks room, and removes what it restored
whatever happens; clean_leftovers() removes what a killed agent left behind.

Where it restores: restore_test_dir, default <state_dir>/restore-drill. The
state directory is the agent's own (mode 0700), so restored copies of
confidential files (a database dump, /etc/shadow) are never readable by other
users, and it lies on disk, not on a RAM-backed /tmp; /var/tmp would need the
same care against other users' symlinks and offers nothing more.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dcguard.agent.sources.storage.backup_checks import LOCKED, tool_environment
from dcguard.agent.sources.storage.backup_config import BackupJob
from dcguard.agent.sources.storage.isotime import parse_iso_time
from dcguard.agent.sources.storage.tools import (
    ToolError,
    ToolExitError,
    error_line,
    low_priority,
    run_tool,
    stream_tool,
)

__all__ = [
    "DRILL_PREFIX",
    "DrillPostponedError",
    "DrillResult",
    "clean_leftovers",
    "drill_directory",
    "run_drill",
]

log = logging.getLogger(__name__)
DRILL_PREFIX = "drill-"
LOCK_SUFFIX = ".lock"
MISMATCHES_LISTED = 5
# Left free beside the restored sample: the agent's spool and state may share the filesystem.
RESERVE_BYTES = 4 * 1024 * 1024
# A source and its snapshot entry with mtimes this close are the same version
# (restic keeps nanoseconds, borg's listing microseconds, a float less).
_MTIME_SLACK = 1e-3
NOT_RESTORED = "was not restored"
SKIPPED = "skipped"


class DrillPostponedError(Exception):
    """The drill could not run now (no room, repository locked): not a verdict on the backup."""


@dataclass(frozen=True)
class DrillResult:
    at: float  # wall-clock end of the drill
    success: bool
    files: int = 0  # restored files compared with their source
    bytes: int = 0  # bytes restored and read back
    skipped: int = 0  # restored, but the source changed since the snapshot
    mismatches: list[str] = field(default_factory=list)  # the first few "path: what is wrong"
    mismatch_count: int = 0
    duration: float = 0.0
    message: str = ""
    subject: str = ""  # what was tested: a snapshot id, or a file and its mtime


@dataclass(frozen=True)
class _Entry:
    path: str  # as the tool names it: absolute for restic, relative for borg
    size: int
    mtime: float

    @property
    def source(self) -> Path:
        return Path("/" + self.path.lstrip("/"))


def drill_directory(job: BackupJob, state_dir: Path) -> Path:
    return Path(job.restore_test_dir) if job.restore_test_dir else state_dir / "restore-drill"


def clean_leftovers(directory: Path) -> int:
    """Remove the drill directories a killed agent left in directory; how many were removed.

    A drill holds an flock on its directory's ".lock" sibling while it runs, so a
    second process on the same state directory (a one-shot `dcguard-agent collect`
    beside the running agent) never removes a drill in progress.
    """
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("restore drill: cannot look for leftovers in %s: %s", directory, exc)
        return 0
    removed = 0
    for entry in entries:
        if not entry.name.startswith(DRILL_PREFIX) or entry.suffix == LOCK_SUFFIX:
            continue
        if entry.is_dir() and not entry.is_symlink() and not _in_use(entry):
            _remove_tree(entry)
            removed += 1
    for entry in entries:  # locks of drills that are gone (killed between the two removals)
        if (
            entry.name.startswith(DRILL_PREFIX)
            and entry.suffix == LOCK_SUFFIX
            and not entry.with_suffix("").exists()
            and not _in_use(entry.with_suffix(""))
        ):
            entry.unlink(missing_ok=True)
    return removed


def _in_use(drill: Path) -> bool:
    """A live drill holds the lock; a lock file that can be taken is a dead drill's."""
    lock = drill.with_name(drill.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def _remove_tree(path: Path) -> None:
    """rmtree that also gets through read-only directories restored from the snapshot."""

    def retry(function: Callable[..., Any], name: str, _exc: Any) -> None:
        parent = Path(name).parent
        try:
            parent.chmod(stat.S_IRWXU)
            function(name)
        except OSError as exc:
            log.warning("restore drill: cannot remove %s: %s", name, exc)

    shutil.rmtree(path, onerror=retry)


# -- choosing the sample ---------------------------------------------------------------


def _sample(entries: Iterable[_Entry], job: BackupJob, rng: random.Random) -> list[_Entry]:
    """A uniform random sample (reservoir) of the regular files that fit the budget.

    The listing is streamed: a snapshot of millions of files is never held in memory.
    """
    reservoir: list[_Entry] = []
    seen = 0
    for entry in entries:
        if not 0 < entry.size <= job.restore_test_max_bytes:
            continue
        seen += 1
        if len(reservoir) < job.restore_test_max_files:
            reservoir.append(entry)
        else:
            slot = rng.randrange(seen)
            if slot < job.restore_test_max_files:
                reservoir[slot] = entry
    rng.shuffle(reservoir)
    chosen, total = [], 0
    for entry in reservoir:
        if total + entry.size <= job.restore_test_max_bytes:
            chosen.append(entry)
            total += entry.size
    return chosen


def _restic_entries(job: BackupJob, snapshot: str) -> Iterator[_Entry]:
    argv = [job.binary, "ls", "--json", "--no-lock", snapshot]
    for line in stream_tool(low_priority(argv), job.timeout, tool_environment(job)):
        entry = _entry(line, "file")
        if entry is not None:
            yield entry


def _borg_entries(job: BackupJob, archive: str) -> Iterator[_Entry]:
    argv = [job.binary, "list", "--json-lines", "--bypass-lock", f"{job.repository}::{archive}"]
    for line in stream_tool(low_priority(argv), job.timeout, tool_environment(job)):
        entry = _entry(line, "-")
        if entry is not None:
            yield entry


def _entry(line: str, file_type: str) -> _Entry | None:
    """One listing line as an entry, or None for anything but a regular file (or garbage)."""
    try:
        node = json.loads(line)
        if not isinstance(node, dict) or node.get("type") != file_type:
            return None
        path, size = node["path"], node["size"]
        if not isinstance(path, str) or isinstance(size, bool) or not isinstance(size, int):
            return None
        return _Entry(path, size, parse_iso_time(str(node["mtime"])))
    except (ValueError, KeyError, TypeError):
        return None


# -- restoring and comparing -------------------------------------------------------------


def _restic_pattern(path: str) -> str:
    """restic's --include takes a glob: a file named 'a*[1].txt' must match only itself."""
    return "".join("\\" + c if c in "\\*?[" else c for c in path)


def _restore(job: BackupJob, snapshot: str, sample: list[_Entry], target: Path) -> str:
    """Restore the sample into target; "" or the tool's error in one line."""
    if job.kind == "restic":
        argv = [job.binary, "restore", snapshot, "--target", str(target)]
        for entry in sample:
            argv += ["--include", _restic_pattern(entry.path)]
        cwd = None
    else:
        lock_wait = str(max(1, int(min(60.0, job.timeout / 2))))
        argv = [
            job.binary,
            "extract",
            "--lock-wait",
            lock_wait,
            f"{job.repository}::{snapshot}",
            *(e.path for e in sample),
        ]
        cwd = target  # borg extracts below the working directory
    try:
        result = run_tool(low_priority(argv), job.timeout, tool_environment(job), cwd=cwd)
    except ToolError as exc:
        return str(exc)
    if result.returncode == 0:
        return ""
    if LOCKED.search(result.stderr):
        raise DrillPostponedError(
            f"{job.kind} could not lock the repository (a backup "
            f"running?): {error_line(result.stderr)}"
        )
    verb = "restore" if job.kind == "restic" else "extract"
    return (
        f"{job.kind} {verb} exited with {result.returncode}: "
        f"{error_line(result.stderr, result.stdout) or 'no message'}"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _unchanged(entry: _Entry) -> bool:
    """The source still holds the version in the snapshot (same size and mtime)."""
    try:
        st = entry.source.stat()
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == entry.size
        and abs(st.st_mtime - entry.mtime) < _MTIME_SLACK
    )


def _restored_size(restored: Path) -> int | None:
    try:
        return restored.stat().st_size if restored.is_file() else None
    except OSError:
        return None


def _compare(entry: _Entry, restored: Path) -> str | None:
    """None when the restored file matches, SKIPPED when the source changed, else the fault."""
    size = _restored_size(restored)
    if size is None or size != entry.size:
        return (
            NOT_RESTORED
            if size is None
            else (f"restored {size} bytes, the snapshot holds {entry.size}")
        )
    if not _unchanged(entry):
        return SKIPPED
    try:
        restored_hash, source_hash = _sha256(restored), _sha256(entry.source)
    except OSError as exc:
        return f"cannot be read back: {exc.strerror or exc}"
    if not _unchanged(entry):  # changed while we read it
        return SKIPPED
    if restored_hash != source_hash:
        return "restored content differs from the unchanged source (SHA-256)"
    return None


def _check_room(directory: Path, needed: int) -> None:
    try:
        fs = os.statvfs(directory)
    except OSError as exc:
        raise DrillPostponedError(
            f"cannot check free space in {directory}: {exc.strerror or exc}"
        ) from None
    free = fs.f_bavail * fs.f_frsize
    if free < needed + RESERVE_BYTES:
        raise DrillPostponedError(
            f"{directory} has {free} bytes free; the drill needs {needed} plus "
            f"{RESERVE_BYTES} in reserve (set restore_test_dir or restore_test_max_bytes)"
        )


def run_drill(
    job: BackupJob, snapshot: str, directory: Path, rng: random.Random | None = None
) -> DrillResult:
    """Restore a sample of snapshot (restic id / borg archive name) and compare it.

    Raises DrillPostponedError when the drill could not run; any answer about
    the backup itself (a failed restore, a mismatch) is a DrillResult.
    """
    started = time.monotonic()
    rng = rng or random.SystemRandom()

    def result(success: bool, **values: Any) -> DrillResult:
        return DrillResult(
            time.time(), success, duration=time.monotonic() - started, subject=snapshot, **values
        )

    verb = "ls" if job.kind == "restic" else "list"
    try:
        entries = (
            _restic_entries(job, snapshot) if job.kind == "restic" else _borg_entries(job, snapshot)
        )
        sample = _sample(entries, job, rng)
    except ToolExitError as exc:  # the snapshot's own file list cannot be read back
        return result(False, message=f"{job.kind} {verb} {exc}")
    except ToolError as exc:
        raise DrillPostponedError(f"{job.kind} {verb}: {exc}") from None

    if not sample:
        return result(True, message="the newest snapshot holds no file to restore")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DrillPostponedError(f"cannot create {directory}: {exc.strerror or exc}") from None
    _check_room(directory, sum(e.size for e in sample))
    # The lock comes first, so no cleaner ever sees the directory unlocked.
    fd, lock = tempfile.mkstemp(
        prefix=f"{DRILL_PREFIX}{job.name}-", suffix=LOCK_SUFFIX, dir=directory
    )
    fcntl.flock(fd, fcntl.LOCK_EX)
    target = Path(lock[: -len(LOCK_SUFFIX)])
    try:
        target.mkdir(mode=0o700)
        failure = _restore(job, snapshot, sample, target)
        if failure:
            return result(False, message=failure)
        compared = skipped = restored_bytes = 0
        mismatches: list[str] = []
        for entry in sample:
            verdict = _compare(entry, target / entry.path.lstrip("/"))
            if verdict != NOT_RESTORED:
                restored_bytes += entry.size
            if verdict == SKIPPED:
                skipped += 1
            elif verdict is None:
                compared += 1
            else:
                mismatches.append(f"{entry.source}: {verdict}")
        message = (
            f"{len(mismatches)} of {len(sample)} restored files do not match: {mismatches[0]}"
            if mismatches
            else ""
        )
        return result(
            not mismatches,
            files=compared,
            bytes=restored_bytes,
            skipped=skipped,
            mismatches=mismatches[:MISMATCHES_LISTED],
            mismatch_count=len(mismatches),
            message=message,
        )
    finally:
        if target.exists():
            _remove_tree(target)
        Path(lock).unlink(missing_ok=True)
        os.close(fd)
