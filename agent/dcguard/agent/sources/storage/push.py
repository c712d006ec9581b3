"""Runs recorded by backup scripts (`dcguard-agent backup-report`), one file per job.

state_dir/backup-runs/<job>.json holds the job's latest run and its latest
success. Writers take an flock on <job>.lock around read-modify-write and
replace the file atomically, so concurrent scripts and a running agent
(which only reads) always see a whole record, and records survive restarts.
"""

from __future__ import annotations

import fcntl
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dcguard.agent.state_dir import atomic_write

__all__ = ["MESSAGE_CAP", "PushRecord", "read_record", "record_run"]

MESSAGE_CAP = 500
DIRECTORY = "backup-runs"


@dataclass(frozen=True)
class PushRecord:
    last_run: float
    last_run_success: bool
    size_bytes: int | None
    message: str
    last_success: float | None
    last_success_bytes: int | None


def _path(state_dir: Path, job: str) -> Path:
    return state_dir / DIRECTORY / f"{job}.json"


def read_record(state_dir: Path, job: str) -> PushRecord | None:
    """The job's record, None if no run was ever recorded; ValueError if it is damaged."""
    try:
        data: Any = json.loads(_path(state_dir, job).read_text())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError("record is not a JSON object")
    try:
        return PushRecord(
            last_run=float(data["last_run"]),
            last_run_success=bool(data["last_run_success"]),
            size_bytes=None if data["size_bytes"] is None else int(data["size_bytes"]),
            message=str(data["message"])[:MESSAGE_CAP],
            last_success=None if data["last_success"] is None else float(data["last_success"]),
            last_success_bytes=(
                None if data["last_success_bytes"] is None else int(data["last_success_bytes"])
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"damaged record ({exc})") from None


def record_run(
    state_dir: Path,
    job: str,
    success: bool,
    size_bytes: int | None,
    message: str,
    min_size: int = 0,
    now: float | None = None,
) -> PushRecord:
    """Record one run; a success smaller than min_size is recorded as a failure."""
    now = time.time() if now is None else now
    if success and min_size and size_bytes is not None and size_bytes < min_size:
        success = False
        message = f"{size_bytes} bytes is below min_size {min_size}" + (
            f"; {message}" if message else ""
        )
    directory = state_dir / DIRECTORY
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / f"{job}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            previous = read_record(state_dir, job)
        except ValueError:
            previous = None  # a damaged record is replaced by this run
        record = PushRecord(
            last_run=now,
            last_run_success=success,
            size_bytes=size_bytes,
            message=message[:MESSAGE_CAP],
            last_success=now if success else (previous.last_success if previous else None),
            last_success_bytes=(
                size_bytes if success else (previous.last_success_bytes if previous else None)
            ),
        )
        atomic_write(_path(state_dir, job), json.dumps(asdict(record)).encode())
    return record
