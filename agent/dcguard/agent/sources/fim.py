"""fim: file integrity of the files an intruder changes first (accounts, sudo, ssh, cron, systemd).

Scans run in a background thread every `interval`, never inside collect().
The first scan sets the baseline silently; later scans report created,
modified, deleted, permission and owner changes. Changes seen while the
package manager was running are tagged `package_update` at low severity
instead of paging (Wazuh #7504). The baseline on disk advances only in
commit(), so a change is reported until a stored report carries it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from dcguard.agent.sources import SourceContext, register
from dcguard.agent.sources.security.baseline import BaselineScanSource
from dcguard.agent.sources.security.events import (
    SecurityCounters,
    SecuritySettings,
    counters_for,
    make_event,
    security_settings,
)
from dcguard.agent.sources.security.fimscan import (
    Change,
    RateLimiter,
    Snapshot,
    diff,
    package_activity,
    scan,
    technique_for,
)
from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.v1 import collector_pb2 as pb

__all__ = ["DEFAULT_PATHS", "FimSource", "fim_factory"]

log = logging.getLogger(__name__)

DEFAULT_PATHS = (
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/sshd_config",
    "/root/.ssh/authorized_keys",
    "/etc/crontab",
    "/etc/cron.d",
    "/etc/systemd/system",
)
DEFAULT_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/rpm/.rpm.lock")
DEFAULT_PACKAGE_LOGS = (
    "/var/log/dpkg.log",
    "/var/log/apt/history.log",
    "/var/log/dnf.rpm.log",
    "/var/log/yum.log",
)
Baseline = dict[str, Any]  # {"roots": [...], "files": Snapshot}


class FimSource(BaselineScanSource[Baseline]):
    """Reports changes to watched files, found by a rate-limited background scan."""

    name = "fim"

    def __init__(
        self,
        *,
        paths: list[str],
        interval: float,
        bytes_per_second: int,
        max_files: int,
        max_file_bytes: int,
        package_locks: list[Path],
        package_logs: list[Path],
        proc_locks: Path,
        settings: SecuritySettings,
        state_file: Path,
        counters: SecurityCounters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            interval=interval,
            settings=settings,
            state_file=state_file,
            counters=counters,
            clock=clock,
        )
        self._paths = paths
        self._bytes_per_second = bytes_per_second
        self._max_files = max_files
        self._max_file_bytes = max_file_bytes
        self._locks = package_locks
        self._package_logs = package_logs
        self._proc_locks = proc_locks
        self._last_scan_start = 0.0
        self._warned_truncated = False

    def _load(self) -> Baseline | None:
        try:
            data = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning(
                "fim: baseline %s is unreadable (%s); taking a new one", self._state_file, exc
            )
            return None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("roots"), list)
            and isinstance(data.get("files"), dict)
        ):
            log.warning("fim: baseline %s is malformed; taking a new one", self._state_file)
            return None
        return data

    # --- the scan thread --------------------------------------------------------------
    def _scan(self, stop: threading.Event) -> None:
        if self._queue.room() == 0:
            return  # reports are not getting out: do not pile up more changes
        started = self._clock()
        previous = self._working
        old_files: Snapshot = previous["files"] if previous else {}
        files, truncated = scan(
            self._paths,
            old_files,
            RateLimiter(self._bytes_per_second, stop),
            stop,
            self._max_files,
            self._max_file_bytes,
        )
        if truncated and not self._warned_truncated:
            log.warning(
                "fim: more than %d files under the watched paths; the rest is not "
                "watched (raise security.fim.max_files)",
                self._max_files,
            )
            self._warned_truncated = True
        baseline: Baseline = {"roots": list(self._paths), "files": files}
        events: list[pb.SecurityEvent] = []
        if previous is not None:
            known = [root for root in previous["roots"] if root in self._paths]
            reason = package_activity(
                self._locks, self._package_logs, self._proc_locks, self._last_scan_start or started
            )
            for change in diff(_under(old_files, known), _under(files, known)):
                events.append(self._event(change, reason, started))
        if events and len(events) > self._queue.room() and len(self._queue) > 0:
            return  # wait until the queue drains; the changes are found again next scan
        self._last_scan_start = started
        self._working = baseline
        self._queue.push_scan(events, previous, baseline)

    def _event(self, change: Change, package_reason: str, when: float) -> pb.SecurityEvent:
        technique, severity = technique_for(change.path)
        details: dict[str, str] = {}
        for label, entry in (("old", change.old), ("new", change.new)):
            if entry is not None:
                details[f"{label}_mode"] = f"{entry['mode']:04o}"
                details[f"{label}_owner"] = f"{entry['uid']}:{entry['gid']}"
                details[f"{label}_sha256"] = entry["sha256"]
                details[f"{label}_size"] = str(entry["size"])
        new_mode = change.new["mode"] if change.new else 0
        if change.type in ("file_created", "file_permissions_changed") and new_mode & 0o002:
            severity = "critical"  # world-writable: anyone can now change it
        tags: list[str] = []
        if package_reason:
            severity = "low"
            tags.append("package_update")
            details["package_manager"] = package_reason
        event = make_event(
            self.name,
            change.type,
            severity,
            when,
            technique=technique,
            raw=f"{change.type} {change.path}",
            raw_max_bytes=self._settings.raw_max_bytes,
            details=details,
            path=change.path,
        )
        event.tags.extend(tags)
        return event


def _under(files: Snapshot, roots: list[str]) -> Snapshot:
    """The entries under roots (a root added to the config is baselined silently)."""
    return {
        path: entry
        for path, entry in files.items()
        if any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)
    }


@register("fim", default_enabled=True)
def fim_factory(root: Table, context: SourceContext) -> FimSource:
    """Read [security.fim]; no I/O here (check-config runs this too)."""
    settings = security_settings(root)
    table = root.table("security").table("fim")
    paths = table.string_list("paths", list(DEFAULT_PATHS))
    for path in paths:
        if not path.startswith("/"):
            raise table.error(
                "paths", tr("must hold absolute paths, got {value}", value=repr(path))
            )
    source = FimSource(
        paths=[path.rstrip("/") or "/" for path in paths],
        interval=table.duration("interval", "5m", minimum=0.05),
        bytes_per_second=table.size("hash_bytes_per_second", 20 * 1024 * 1024, minimum=4096),
        max_files=table.integer("max_files", 20000, minimum=1),
        max_file_bytes=table.size("max_file_bytes", 64 * 1024 * 1024, minimum=1),
        package_locks=[Path(p) for p in table.string_list("package_locks", list(DEFAULT_LOCKS))],
        package_logs=[
            Path(p) for p in table.string_list("package_logs", list(DEFAULT_PACKAGE_LOGS))
        ],
        proc_locks=table.path("proc_locks", str(context.proc_root / "locks")),
        settings=settings,
        state_file=context.state_dir / "fim-baseline.json",
        counters=counters_for(context.state_dir),
    )
    table.finish()
    return source
