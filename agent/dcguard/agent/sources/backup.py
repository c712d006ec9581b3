"""backup: every [[backup]] job's latest run, size, verification and same-device verdict.

restic, borg and files jobs are checked in a background thread, each on its
own check_every schedule (restic/borg also run their check every
verify_every, and restore a sample of their newest snapshot every
restore_test_every, see restore_drill); collect() only copies the latest results. push jobs are
read from the records `dcguard-agent backup-report` writes, at every
collect(), so a script's report shows up within one interval. Verification
and drill results are kept in state_dir/backup-state.json: a restart
neither forgets them nor re-runs an expensive check early.
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
from dcguard.agent.sources.storage.readable import check_readable
from dcguard.agent.sources.storage.restore_drill import (
    DrillPostponedError,
    DrillResult,
    clean_leftovers,
    drill_directory,
    run_drill,
)
from dcguard.agent.state_dir import atomic_write
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["STATE_FILE", "BackupSource", "recorded_paths"]

log = logging.getLogger(__name__)
STATE_FILE = "backup-state.json"
LOCKED_RETRY = 600.0  # a repository locked by a running backup: try its check again later
# A file younger than this may still be being written: its content is checked later.
SETTLE_SECONDS = 120.0
# After a failed drill the next one comes sooner, so a repaired repository is seen within a day.
FAILED_DRILL_RETRY = 86400.0


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
    copy_location: str = ""
    next_check: float = 0.0
    next_verify: float = 0.0
    drill: DrillResult | None = None
    drill_last_success: float | None = None
    next_drill: float = 0.0

    @property
    def drills(self) -> bool:
        return self.job.kind in ("restic", "borg") and self.job.restore_test_every > 0


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

    def __init__(
        self,
        jobs: list[BackupJob],
        state_dir: Path,
        sys_root: Path,
        mounts_file: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state_dir = state_dir
        self._sys_root = sys_root
        self._mounts_file = mounts_file
        self._clock = clock
        self._lock = threading.Lock()
        self._states = [_JobState(job) for job in jobs]
        self._state_loaded = False
        self._load_lock = threading.Lock()
        self._poller = Poller("backup", self._step)
        self._leftovers_cleaned = False

    # -- the background thread -------------------------------------------------------

    def _step(self) -> float:
        self._load_state()
        self._clean_leftovers()
        # Every job's check before any verification or drill (which can take minutes): the
        # agent's first report waits for this round only so long (report_builder.prime),
        # and a job not yet checked is missing from it.
        now = self._clock()
        for state in self._states:
            if state.next_check <= now:
                self._check(state)
                state.next_check = self._clock() + state.job.check_every
        for state in self._states:
            if state.job.verify_every and state.next_verify <= self._clock():
                self._verify(state)
        for state in self._states:
            if state.drills and state.next_drill <= self._clock():
                self._drill(state)
        upcoming = [s.next_check for s in self._states]
        upcoming += [s.next_verify for s in self._states if s.job.verify_every]
        upcoming += [s.next_drill for s in self._states if s.drills]
        return max(1.0, min(upcoming, default=3600.0) - self._clock())

    def _clean_leftovers(self) -> None:
        """Drill directories a killed agent left behind go before anything else runs."""
        if self._leftovers_cleaned:
            return
        self._leftovers_cleaned = True
        for directory in {
            drill_directory(s.job, self._state_dir)
            for s in self._states
            if s.job.kind in ("restic", "borg")
        }:
            removed = clean_leftovers(directory)
            if removed:
                log.info(
                    "backup: removed %d restore drill directories left in %s", removed, directory
                )

    def _drill(self, state: _JobState) -> None:
        """Restore a sample of the newest snapshot; only once a check has found one."""
        job = state.job
        snapshot = state.result.snapshot if state.result is not None else ""
        if job.kind == "borg":
            snapshot = snapshot.rsplit(" ", 1)[0]  # "<archive name> <archive id>"
        if not snapshot:
            state.next_drill = self._clock() + min(job.check_every, LOCKED_RETRY)
            return
        try:
            verdict = run_drill(job, snapshot, drill_directory(job, self._state_dir))
        except DrillPostponedError as exc:
            log.warning("backup %s: restore drill postponed: %s", job.name, exc)
            state.next_drill = self._clock() + min(job.restore_test_every, LOCKED_RETRY)
            return
        if not verdict.success:
            log.warning("backup %s: restore drill failed: %s", job.name, verdict.message)
        with self._lock:
            state.drill = verdict
            if verdict.success:
                state.drill_last_success = verdict.at
        state.next_drill = self._clock() + _drill_interval(job, verdict)
        self._save_state()

    def _check(self, state: _JobState) -> None:
        job = state.job
        same, shared, where = self._placement(job)
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
            state.copy_location = where
            state.error = error
            if result is not None and result.size_bytes is None and state.result is not None:
                # Not readable now (borg locked by a running backup): the last known stand.
                result = replace(
                    result, size_bytes=state.result.size_bytes, paths=state.result.paths
                )
            if result is not None:
                state.result = result
            state.checked = True
        if job.kind == "files" and result is not None and result.snapshot:
            self._check_content(state, Path(result.snapshot))
        self._save_state()

    def _check_content(self, state: _JobState, path: Path) -> None:
        """A files job's restore test: its newest file read to the end, once per version."""
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return  # removed since the check listed it
        subject = f"{path} {mtime}"
        if time.time() - mtime < SETTLE_SECONDS or (
            state.drill is not None and state.drill.subject == subject
        ):
            return
        started = time.monotonic()
        ok, note = check_readable(path, state.job.restore_test_max_bytes, state.job.timeout)
        if ok is None:
            log.info("backup %s: %s", state.job.name, note)
            return
        if not ok:
            log.warning("backup %s: %s", state.job.name, note)
        verdict = DrillResult(
            time.time(),
            ok,
            files=1,
            bytes=path.stat().st_size if ok else 0,
            duration=time.monotonic() - started,
            message=note,
            subject=subject,
        )
        with self._lock:
            state.drill = verdict
            if ok:
                state.drill_last_success = verdict.at

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

    def _placement(self, job: BackupJob) -> tuple[bool, list[str], str]:
        """(same device, the shared disks, where the copy lives: see Backup.copy_location)."""
        if job.kind in ("restic", "borg") and blockdev.is_remote_repository(
            job.kind, job.repository
        ):
            return False, [], job.copy_location or "other_host"
        target = backup_location(job)
        if target is None:
            return False, [], job.copy_location
        try:
            backup = blockdev.locate(target, self._sys_root, self._mounts_file)
            source = (
                blockdev.locate(job.source, self._sys_root, self._mounts_file)
                if job.source
                else None
            )
        except OSError as exc:
            log.warning("backup %s: cannot tell which disks hold it: %s", job.name, exc)
            return False, [], job.copy_location
        shared = blockdev.shared_disks(source, backup) if source is not None else []
        if backup.remote:
            where = "other_host"
        elif shared:
            where = "same_disk"
        elif source is not None and source.disks and backup.disks:
            where = "other_disk"
        else:
            where = "this_host"  # on this server; which disk is not known (tmpfs, no source)
        return bool(shared), shared, job.copy_location or where

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
            data = {
                s.job.name: {
                    "result": asdict(s.result) if s.result else None,
                    "verify": asdict(s.verify) if s.verify else None,
                    "drill": asdict(s.drill) if s.drill else None,
                    "drill_last_success": s.drill_last_success,
                    "same_device": s.same_device,
                    "shared_disks": s.shared_disks,
                    "copy_location": s.copy_location,
                }
                for s in self._states
                if s.checked or s.verify or s.drill
            }
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
            job=job.name,
            kind=job.kind,
            rpo_seconds=job.rpo,
            min_size_bytes=job.min_size,
            verify_every_seconds=job.verify_every,
            source_configured=bool(job.source),
            same_device=state.same_device,
            shared_disks=state.shared_disks,
            copy_location=state.copy_location,
        )
        result, error = state.result, state.error
        if job.kind == "push":
            result, error = self._push_result(job)
        if error:
            entry.error = error[:500]
        if result is not None:
            _fill_run(entry, result)
        if state.drills:
            entry.restore_test_every_seconds = job.restore_test_every
        if state.drill is not None:
            _fill_drill(entry.restore_test, state.drill, state.drill_last_success)
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
        size = (
            record.size_bytes if record.size_bytes is not None else (record.last_success_bytes or 0)
        )
        return RunResult(
            record.last_run, record.last_run_success, record.last_success, size, record.message
        ), ""

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


def recorded_paths(state_dir: Path) -> dict[str, tuple[str, ...]]:
    """Per job, the paths its newest snapshot/archive recorded, as the backup source last
    saved them (for coverage); {} when nothing is saved yet or the file is unreadable."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for name, entry in data.items() if isinstance(data, dict) else ():
        result = entry.get("result") if isinstance(entry, dict) else None
        paths = result.get("paths") if isinstance(result, dict) else None
        if isinstance(paths, list):
            found[str(name)] = tuple(p for p in paths if isinstance(p, str))
    return found


def _restore(state: _JobState, entry: dict[str, Any], monotonic_now: float) -> None:
    """Take what an earlier run saved for this job; a malformed part is skipped."""
    verify, result = entry.get("verify"), entry.get("result")
    _restore_drill(state, entry, monotonic_now)
    try:
        if isinstance(verify, dict):
            state.verify = VerifyResult(
                float(verify["at"]), bool(verify["success"]), str(verify["message"])
            )
            # Next check when it falls due by the wall clock, not at once after a restart.
            due_in = state.verify.at + state.job.verify_every - time.time()
            state.next_verify = monotonic_now + max(0.0, due_in)
        if isinstance(result, dict):
            paths = result.get("paths", [])
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise TypeError("paths is not a list of strings")
            state.result = _checked_result(RunResult(**{**result, "paths": tuple(paths)}))
            state.same_device = bool(entry.get("same_device"))
            state.shared_disks = [str(d) for d in entry.get("shared_disks") or []]
            state.copy_location = str(entry.get("copy_location") or "")
            state.checked = True
    except (TypeError, KeyError, ValueError):
        log.warning("backup %s: ignoring a malformed saved state", state.job.name)


def _restore_drill(state: _JobState, entry: dict[str, Any], monotonic_now: float) -> None:
    """The last drill an earlier run saved, so a restart neither forgets nor repeats it."""
    drill, last_success = entry.get("drill"), entry.get("drill_last_success")
    if not isinstance(drill, dict):
        return
    try:
        mismatches = drill.get("mismatches")
        if not isinstance(mismatches, list):
            raise TypeError("mismatches is not a list")
        state.drill = DrillResult(
            at=float(drill["at"]),
            success=bool(drill["success"]),
            files=int(drill["files"]),
            bytes=int(drill["bytes"]),
            skipped=int(drill["skipped"]),
            mismatches=[str(m) for m in mismatches],
            mismatch_count=int(drill["mismatch_count"]),
            duration=float(drill["duration"]),
            message=str(drill["message"]),
            subject=str(drill.get("subject", "")),
        )
        state.drill_last_success = float(last_success) if last_success is not None else None
    except (TypeError, KeyError, ValueError):
        log.warning("backup %s: ignoring a malformed saved restore drill", state.job.name)
        state.drill = None
        return
    due_in = state.drill.at + _drill_interval(state.job, state.drill) - time.time()
    state.next_drill = monotonic_now + max(0.0, due_in)


def _drill_interval(job: BackupJob, last: DrillResult) -> float:
    return (
        job.restore_test_every if last.success else min(job.restore_test_every, FAILED_DRILL_RETRY)
    )


def _fill_drill(message: pb.RestoreTest, drill: DrillResult, last_success: float | None) -> None:
    message.time.FromNanoseconds(int(drill.at * 1e9))
    message.success = drill.success
    message.files, message.bytes, message.skipped = drill.files, drill.bytes, drill.skipped
    message.mismatches.extend(m[:300] for m in drill.mismatches)
    message.mismatch_count = drill.mismatch_count
    message.duration_seconds = drill.duration
    message.message = drill.message[:500]
    if last_success is not None:
        message.last_success.FromNanoseconds(int(last_success * 1e9))


def _checked_result(result: RunResult) -> RunResult:
    """A RunResult read back from JSON, with every field of the type it must have."""
    for when in (result.last_run, result.last_success):
        if when is not None and (isinstance(when, bool) or not isinstance(when, (int, float))):
            raise TypeError("a time is not a number")
    if not (
        isinstance(result.last_run_success, bool)
        and isinstance(result.message, str)
        and isinstance(result.snapshot, str)
        and (result.size_bytes is None or type(result.size_bytes) is int)
    ):
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
