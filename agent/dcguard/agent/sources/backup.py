"""backup: every [[backup]] job's latest run, size, verification and same-device verdict.

restic, borg and files jobs are checked in a background thread, each on its
own check_every schedule (restic/borg also run their check every
verify_every); collect() only copies the latest results. push jobs are
read from the records `dcguard-agent backup-report` writes, at every
collect(), so a script's report shows up within one interval. Verification
results are kept in state_dir/backup-verify.json: a restart neither
forgets them nor re-runs an expensive check early.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.agent.sources.storage import blockdev
from dcguard.agent.sources.storage.backup_checks import (
    CheckError,
    RunResult,
    VerifyResult,
    check_files,
    check_repository,
    verify_repository,
)
from dcguard.agent.sources.storage.backup_config import BackupJob, parse_backups
from dcguard.agent.sources.storage.config import parse_storage
from dcguard.agent.sources.storage.poller import Poller
from dcguard.agent.sources.storage.push import read_record
from dcguard.agent.state_dir import atomic_write
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["BackupSource"]

log = logging.getLogger(__name__)
STATE_FILE = "backup-state.json"
LOCKED_RETRY = 600.0  # a repository locked by a running backup: try its check again later


@dataclass
class _JobState:
    job: BackupJob
    result: RunResult | None = None
    error: str = ""
    # Not reported before its first check (or one saved by an earlier run): an
    # empty entry would read as "never succeeded" on the collector.
    checked: bool = False
    verify: VerifyResult | None = None
    same_device: bool = False
    shared_disks: list[str] = field(default_factory=list)
    next_check: float = 0.0
    next_verify: float = 0.0


def backup_location(job: BackupJob) -> str | None:
    """The local path the backup lands in; None when remote or unknown."""
    if job.kind in ("restic", "borg"):
        if blockdev.is_remote_repository(job.kind, job.repository):
            return None
        return blockdev.local_repository_path(job.repository)
    if job.kind == "files":
        return job.path
    return job.path or None


class BackupSource:
    name = "backup"

    def __init__(self, jobs: list[BackupJob], state_dir: Path, sys_root: Path,
                 mounts_file: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._state_dir = state_dir
        self._sys_root = sys_root
        self._mounts_file = mounts_file
        self._clock = clock
        self._lock = threading.Lock()
        self._states = [_JobState(job) for job in jobs]
        self._state_loaded = False
        self._load_lock = threading.Lock()
        self._poller = Poller("backup", self._step)

    # -- the background thread -------------------------------------------------------

    def _step(self) -> float:
        self._load_state()
        now = self._clock()
        for state in self._states:
            if state.next_check <= now:
                self._check(state)
                state.next_check = self._clock() + state.job.check_every
            if state.job.verify_every and state.next_verify <= self._clock():
                self._verify(state)
        upcoming = [s.next_check for s in self._states]
        upcoming += [s.next_verify for s in self._states if s.job.verify_every]
        return max(1.0, min(upcoming, default=3600.0) - self._clock())

    def _check(self, state: _JobState) -> None:
        job = state.job
        same, shared = self._same_device(job)
        result: RunResult | None = None
        error = ""
        try:
            if job.kind == "files":
                result = check_files(job)
            elif job.kind in ("restic", "borg"):
                result = check_repository(job, state.result)
        except CheckError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one job's surprise must not stop the others
            error = f"{type(exc).__name__}: {exc}"
        if error and error != state.error:
            log.warning("backup %s: %s", job.name, error)
        with self._lock:
            state.same_device, state.shared_disks = same, shared
            state.error = error
            if result is not None and result.size_bytes is None and state.result is not None:
                result = replace(result, size_bytes=state.result.size_bytes)
            if result is not None:
                state.result = result
            state.checked = True
        self._save_state()

    def _verify(self, state: _JobState) -> None:
        job = state.job
        try:
            verdict = verify_repository(job, time.time())
        except CheckError as exc:
            log.warning("backup %s: verification postponed: %s", job.name, exc)
            state.next_verify = self._clock() + min(job.verify_every, LOCKED_RETRY)
            return
        with self._lock:
            state.verify = verdict
        state.next_verify = self._clock() + job.verify_every
        self._save_state()

    def _same_device(self, job: BackupJob) -> tuple[bool, list[str]]:
        target = backup_location(job)
        if not job.source or target is None:
            return False, []
        try:
            source = blockdev.locate(job.source, self._sys_root, self._mounts_file)
            backup = blockdev.locate(target, self._sys_root, self._mounts_file)
        except OSError as exc:
            log.warning("backup %s: cannot tell which disks hold it: %s", job.name, exc)
            return False, []
        shared = blockdev.shared_disks(source, backup)
        return bool(shared), shared

    def _load_state(self) -> None:
        """Last results and verdicts saved by an earlier run: reported until checked again."""
        # collect() and the thread may both get here first; the loser waits for the load.
        with self._load_lock:
            if not self._state_loaded:
                self._state_loaded = True
                self._read_state()

    def _read_state(self) -> None:
        try:
            data = json.loads((self._state_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("backup: ignoring unreadable %s: %s", STATE_FILE, exc)
            return
        for state in self._states:
            entry: Any = data.get(state.job.name) if isinstance(data, dict) else None
            if not isinstance(entry, dict):
                continue
            with self._lock:
                _restore(state, entry, self._clock())

    def _save_state(self) -> None:
        with self._lock:
            data = {s.job.name: {"result": asdict(s.result) if s.result else None,
                                 "verify": asdict(s.verify) if s.verify else None,
                                 "same_device": s.same_device, "shared_disks": s.shared_disks}
                    for s in self._states if s.checked or s.verify}
        try:
            self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(self._state_dir / STATE_FILE, json.dumps(data).encode())
        except OSError as exc:
            log.warning("backup: cannot save %s: %s", STATE_FILE, exc)

    # -- the report ------------------------------------------------------------------

    def start(self) -> bool:
        """Start the background checks if any job needs them; False if none does."""
        if any(s.job.kind != "push" or s.job.source for s in self._states):
            self._poller.start()
            return True
        return False

    def collect(self, report: pb.Report) -> None:
        self._load_state()
        self.start()
        with self._lock:
            for state in self._states:
                if state.checked or state.job.kind == "push":
                    report.backups.append(self._message(state))

    def _message(self, state: _JobState) -> pb.Backup:
        job = state.job
        entry = pb.Backup(
            job=job.name, kind=job.kind, rpo_seconds=job.rpo, min_size_bytes=job.min_size,
            verify_every_seconds=job.verify_every, source_configured=bool(job.source),
            same_device=state.same_device, shared_disks=state.shared_disks,
        )
        result, error = state.result, state.error
        if job.kind == "push":
            result, error = self._push_result(job)
        if error:
            entry.error = error[:500]
        if result is not None:
            _fill_run(entry, result)
        if state.verify is not None:
            entry.last_verified.FromNanoseconds(int(state.verify.at * 1e9))
            entry.last_verify_success = state.verify.success
            if not state.verify.success and not entry.message:
                entry.message = state.verify.message[:500]
        return entry

    def _push_result(self, job: BackupJob) -> tuple[RunResult | None, str]:
        try:
            record = read_record(self._state_dir, job.name)
        except (OSError, ValueError) as exc:
            return None, f"cannot read the recorded run: {exc}"
        if record is None:
            return RunResult(None, False, None, 0, "no run recorded yet"), ""
        size = record.size_bytes if record.size_bytes is not None else (
            record.last_success_bytes or 0)
        return RunResult(record.last_run, record.last_run_success, record.last_success,
                         size, record.message), ""

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """For tests and one-shot commands: wait until the checks ran n rounds."""
        return self._poller.wait_rounds(rounds, timeout)

    def wake(self) -> None:
        with self._lock:
            for state in self._states:
                state.next_check = 0.0
        self._poller.wake()

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self._poller.close()


def _restore(state: _JobState, entry: dict[str, Any], monotonic_now: float) -> None:
    """Take what an earlier run saved for this job; a malformed part is skipped."""
    verify, result = entry.get("verify"), entry.get("result")
    try:
        if isinstance(verify, dict):
            state.verify = VerifyResult(float(verify["at"]), bool(verify["success"]),
                                        str(verify["message"]))
            # Next check when it falls due by the wall clock, not at once after a restart.
            due_in = state.verify.at + state.job.verify_every - time.time()
            state.next_verify = monotonic_now + max(0.0, due_in)
        if isinstance(result, dict):
            state.result = _checked_result(RunResult(**result))
            state.same_device = bool(entry.get("same_device"))
            state.shared_disks = [str(d) for d in entry.get("shared_disks") or []]
            state.checked = True
    except (TypeError, KeyError, ValueError):
        log.warning("backup %s: ignoring a malformed saved state", state.job.name)


def _checked_result(result: RunResult) -> RunResult:
    """A RunResult read back from JSON, with every field of the type it must have."""
    for when in (result.last_run, result.last_success):
        if when is not None and (isinstance(when, bool) or not isinstance(when, (int, float))):
            raise TypeError("a time is not a number")
    if not (isinstance(result.last_run_success, bool) and isinstance(result.message, str)
            and isinstance(result.snapshot, str)
            and (result.size_bytes is None or type(result.size_bytes) is int)):
        raise TypeError("a field has the wrong type")
    return result


def _fill_run(entry: pb.Backup, result: RunResult) -> None:
    if result.last_run is not None:
        entry.last_run.FromNanoseconds(int(result.last_run * 1e9))
        entry.last_run_success = result.last_run_success
    if result.last_success is not None:
        entry.last_success.FromNanoseconds(int(result.last_success * 1e9))
    entry.size_bytes = max(0, min(result.size_bytes or 0, 2**64 - 1))
    entry.message = result.message[:500]


@register("backup", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    jobs = parse_backups(config)
    storage = parse_storage(config, context)
    return BackupSource(jobs, context.state_dir, storage.sys_root, storage.mounts_file)
