"""auth_log: login, sudo, su and account-management events from the authentication log.

Reads /var/log/auth.log (Debian/Ubuntu) or /var/log/secure (RHEL family), or
the systemd journal, and turns the lines it recognises into SecurityEvents
(vocabulary in docs/security-events.md). Unrecognised and oversized lines
are counted in SecurityStats. The read position is saved in commit() only,
so a crash re-reads lines instead of losing them, and the events a
committed report carried are never sent again.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Union

from dcguard.agent.logs.journal import JournalEntry, JournalReader, journalctl_command
from dcguard.agent.logs.tailer import DEFAULT_ROTATED, Checkpoint, FileTailer, rotated_globs
from dcguard.agent.sources import SourceContext, register
from dcguard.agent.sources.security.authparse import (
    EventSpec,
    parse_line,
    parse_message,
    syslog_time,
)
from dcguard.agent.sources.security.events import (
    SecurityCounters,
    SecuritySettings,
    counters_for,
    make_event,
    security_settings,
)
from dcguard.agent.sources.security.queue import EventQueue
from dcguard.agent.state_dir import atomic_write
from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.v1 import collector_pb2 as pb

__all__ = ["AuthLogSource", "auth_log_factory"]

log = logging.getLogger(__name__)

DEFAULT_PATHS = ("/var/log/auth.log", "/var/log/secure")
MODES = ("auto", "file", "journal")
# journald facilities auth (4) and authpriv (10): what rsyslog writes to auth.log/secure.
JOURNAL_MATCHES = ("SYSLOG_FACILITY=4", "SYSLOG_FACILITY=10")
JournalCheckpoint = dict[str, Any]
AnyCheckpoint = Union[Checkpoint, JournalCheckpoint, None]


class AuthLogSource:
    """Tails the authentication log (file or journal) into a bounded event queue."""

    name = "auth_log"

    def __init__(
        self,
        *,
        mode: str,
        paths: tuple[Path, ...],
        rotated: tuple[str, ...],
        start_at_end: bool,
        max_line_bytes: int,
        max_lines_per_collect: int,
        journalctl: str,
        settings: SecuritySettings,
        state_file: Path,
        counters: SecurityCounters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mode = mode
        self._paths = paths
        self._rotated = rotated
        self._start_at_end = start_at_end
        self._max_line = max_line_bytes
        self._max_lines = max_lines_per_collect
        self._journalctl = journalctl
        self._settings = settings
        self._state_file = state_file
        self._counters = counters
        self._clock = clock
        self._queue: EventQueue[AnyCheckpoint] = EventQueue(
            settings.max_events_per_report,
            settings.max_pending_events,
            counters,
            None,
            settings.max_event_bytes_per_report,
        )
        self._tailer: FileTailer | None = None
        self._journal: JournalReader | None = None
        self._journal_skip: tuple[str, int] | None = None
        self._journal_cursor = ""  # the last entry taken from the reader
        self._journal_error = ""
        self._started = False
        self._written = b""  # what commit() last wrote: an unchanged position is not rewritten

    # --- start-up (first collect, never in the factory) --------------------------------
    def _saved(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("auth_log: ignoring unreadable position %s: %s", self._state_file, exc)
            return {}

    def _start(self) -> None:
        self._started = True
        saved = self._saved()
        mode = self._mode
        path = next((p for p in self._paths if p.exists()), None)
        if mode == "auto":
            mode = (
                "file" if path is not None or shutil.which(self._journalctl) is None else "journal"
            )
        if mode == "journal":
            cursor = str(saved.get("cursor", "")) if saved.get("mode") == "journal" else ""
            skip = int(saved.get("skip", 0) or 0) if cursor else 0
            self._journal_skip = (cursor, skip) if skip else None
            self._queue.set_tail({"mode": "journal", "cursor": cursor, "skip": 0})
            self._start_journal(cursor)
            return
        if path is None:
            path = self._paths[0]
        checkpoint = None
        if saved.get("mode") == "file" and saved.get("path") == str(path):
            checkpoint = Checkpoint.from_json(saved.get("checkpoint"))
        self._tailer = FileTailer(
            path, rotated_globs(path, self._rotated), self._max_line, self._settings.raw_max_bytes
        )
        self._tailer.restore(checkpoint, start_at_end=self._start_at_end)
        self._queue.set_tail(checkpoint)

    def _start_journal(self, cursor: str) -> None:
        self._journal_cursor = cursor
        self._journal = JournalReader(
            [*journalctl_command(self._journalctl), "--follow", *JOURNAL_MATCHES],
            capacity=max(1, self._settings.max_pending_events // 4),
            max_line_bytes=self._max_line,
            after_cursor=cursor,
        )
        self._journal.start()

    # --- the Source protocol ----------------------------------------------------------
    def collect(self, report: pb.Report) -> None:
        # A hand-out not committed by now went into a report that was not stored; and if
        # this collect fails, the report stored next will not carry it either.
        self._queue.withdraw()
        if not self._started:
            self._start()
        if self._tailer is not None:
            self._read_file()
        elif self._journal is not None:
            self._read_journal()
        handed = self._queue.hand_out(report)
        self._counters.fill(report.security_stats)
        error = self._tailer.error if self._tailer is not None else self._journal_error
        self._journal_error = ""
        if error and handed == 0:
            # A failed source's part is not merged into the report: hand out nothing then.
            self._queue.withdraw()
            raise RuntimeError(error)

    def commit(self) -> None:
        handed, checkpoint = self._queue.commit()
        if not handed or checkpoint is None:
            return
        if isinstance(checkpoint, Checkpoint):
            if self._tailer is None:
                return
            state: dict[str, Any] = {
                "mode": "file",
                "path": str(self._tailer.path),
                "checkpoint": checkpoint.to_json(),
            }
        else:
            state = checkpoint
        encoded = json.dumps(state, sort_keys=True).encode()
        # A quiet log leaves the position where it was: no atomic write (two fsyncs) then.
        if encoded != self._written:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._state_file, encoded)
            self._written = encoded

    def close(self) -> None:
        if self._tailer is not None:
            self._tailer.shutdown()
        if self._journal is not None:
            self._journal.close()

    # --- reading ----------------------------------------------------------------------
    def _read_file(self) -> None:
        if self._tailer is None:
            return
        budget = self._max_lines
        while budget > 0 and self._queue.room() > 0:
            lines = self._tailer.read(min(budget, self._queue.room(), 1000))
            if not lines:
                break
            budget -= len(lines)
            for line in lines:
                skip = self._tailer.restored_skip
                self._tailer.restored_skip = 0
                self._counters.add("lines_read")
                if line.oversized:
                    self._counters.add("lines_oversized")
                    continue
                text = line.data.decode("utf-8", "replace").replace("\x00", "\ufffd").rstrip("\r")
                specs, when, process = self._parse(text)
                for index, spec in enumerate(specs):
                    if index >= skip:
                        start = replace(line.start, skip=index) if index else line.start
                        self._push(spec, when, process, text, start)
        self._queue.set_tail(self._tailer.position())

    def _read_journal(self) -> None:
        if self._journal is None:
            return
        for entry in self._journal.get(min(self._max_lines, self._queue.room())):
            self._counters.add("lines_read")
            self._journal_cursor = entry.cursor
            self._queue.set_tail({"mode": "journal", "cursor": entry.cursor, "skip": 0})
            if entry.oversized:
                self._counters.add("lines_oversized")
                continue
            skip = 0
            if self._journal_skip and self._journal_skip[0] == entry.previous:
                skip = self._journal_skip[1]
            self._journal_skip = None
            self._journal_entry(entry, skip)
        if not self._journal.running() and self._journal.pending() == 0:
            # journalctl exited (journald restarted, binary missing): everything it printed
            # has been taken; report the failure and start again after the last entry.
            self._journal_error = self._journal.error
            self._journal.close()
            self._start_journal(self._journal_cursor)

    def _journal_entry(self, entry: JournalEntry, skip: int) -> None:
        message = entry.message.replace("\x00", "\ufffd")
        process = entry.program + (f"[{entry.pid}]" if entry.pid else "")
        raw = f"{process}: {message}"
        try:
            specs = parse_message(entry.program, message)
        except Exception:
            log.exception("auth_log: parser failed on a journal entry")
            specs = None
        if specs is None:
            self._counters.add("lines_unrecognised")
            return
        when = entry.when if entry.when is not None else self._clock()
        # Anyone may log as "sshd" (logger -t sshd ...); journald's _COMM says who really did.
        forged = bool(entry.comm) and not _same_program(entry.comm, entry.program)
        for index, spec in enumerate(specs):
            if index >= skip:
                if forged:
                    spec.details["identifier_mismatch"] = entry.comm
                self._push(
                    spec,
                    when,
                    process,
                    raw,
                    {"mode": "journal", "cursor": entry.previous, "skip": index},
                    tags=["identifier_mismatch"] if forged else [],
                )

    def _parse(self, text: str) -> tuple[list[EventSpec], float, str]:
        now = self._clock()
        try:
            parsed = parse_line(text, now)
        except Exception:
            log.exception("auth_log: parser failed on a line")
            parsed = None
        if parsed is None:
            self._counters.add("lines_unrecognised")
            return [], now, ""
        return parsed.events, parsed.when if parsed.when is not None else now, parsed.process

    def _push(
        self,
        spec: EventSpec,
        when: float,
        process: str,
        raw: str,
        start: AnyCheckpoint,
        tags: list[str] | None = None,
    ) -> None:
        event = make_event(
            self.name,
            spec.type,
            spec.severity,
            when,
            technique=spec.technique,
            user=spec.user,
            source_address=spec.address,
            process=process,
            raw=raw,
            raw_max_bytes=self._settings.raw_max_bytes,
            details=spec.details,
        )
        event.tags.extend(tags or [])
        self._queue.push(event, start)


def _same_program(comm: str, identifier: str) -> bool:
    """Whether the kernel's command name (cut to 15 characters) fits the syslog identifier."""
    comm, identifier = comm[:15], identifier[:15]
    return identifier.startswith(comm) or comm.startswith(identifier)


@register("auth_log", default_enabled=True)
def auth_log_factory(root: Table, context: SourceContext) -> AuthLogSource:
    """Read [security.auth_log]; no I/O here (check-config runs this too)."""
    settings = security_settings(root)
    table = root.table("security").table("auth_log")
    mode = table.string("mode", "auto")
    table.check(
        "mode",
        mode,
        lambda value: value in MODES,
        lambda: tr(
            "must be one of {choices}, got {value}", choices=", ".join(MODES), value=repr(mode)
        ),
    )
    paths: tuple[Path, ...] = tuple(Path(p) for p in DEFAULT_PATHS)
    if table.has("path"):
        paths = (table.path("path"),)
        if mode == "auto":
            mode = "file"  # a log named in the config is read even before it exists
    rotated = tuple(table.string_list("rotated", list(DEFAULT_ROTATED)))
    start_at = table.string("start_at", "end")
    table.check(
        "start_at",
        start_at,
        lambda value: value in ("end", "beginning"),
        lambda: tr('must be "end" or "beginning", got {value}', value=repr(start_at)),
    )
    source = AuthLogSource(
        mode=mode,
        paths=paths,
        rotated=rotated,
        start_at_end=start_at == "end",
        max_line_bytes=table.size("max_line_bytes", 16384, minimum=256),
        max_lines_per_collect=table.integer("max_lines_per_collect", 50000, minimum=1),
        journalctl=table.string("journalctl", "journalctl"),
        settings=settings,
        state_file=context.state_dir / "auth_log.position.json",
        counters=counters_for(context.state_dir),
    )
    table.finish()
    return source


_ = syslog_time  # re-exported for tests of timestamp inference
