"""ransomware: data being encrypted, renamed or wiped en masse, or a canary touched.

A background thread watches the data locations with inotify
(security/inotify.py), samples what was written (the first and a middle
block, under a byte budget per interval, never files over a bound), and
feeds a Detector (security/ransomsigns.py) whose signs become critical
events: `ransomware_suspected` (T1486) or `mass_deletion` (T1485). The
report cycle only hands out queued events, like the other security sources.

Quiet on purpose: backup targets of every [[backup]] job and the agent's
state directory are never watched; compressed archives, photos and PDFs
match their type; database files have no type to contradict; a sign seen
while the package manager ran is logged, not reported (as fim tags its
changes); canaries are reported whatever else is happening.
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dcguard.agent.sources import SourceContext, register
from dcguard.agent.sources.fim import DEFAULT_LOCKS, DEFAULT_PACKAGE_LOGS
from dcguard.agent.sources.security import canary as canaries
from dcguard.agent.sources.security.events import (
    SecurityCounters,
    SecuritySettings,
    counters_for,
    make_event,
    security_settings,
)
from dcguard.agent.sources.security.filetypes import BLOCK, claimed_type, content_sign, sample
from dcguard.agent.sources.security.fimscan import package_activity
from dcguard.agent.sources.security.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    FileEvent,
    Inotify,
)
from dcguard.agent.sources.security.queue import EventQueue
from dcguard.agent.sources.security.ransomsigns import Detector, Sign, Thresholds
from dcguard.agent.sources.storage.backup_config import BackupJob, parse_backups
from dcguard.agent.sources.storage.coverage import configure_feed
from dcguard.agent.sources.storage.data_locations import DataLocation, Discovery
from dcguard.agent.sources.storage.discovery_feed import DiscoveryFeed
from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "Location",
    "RansomwareSource",
    "WatchSettings",
    "parse_watch",
    "ransomware_factory",
    "watch_locations",
]

log = logging.getLogger(__name__)

_CANARY_CHANGES = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_DELETE
_MAX_PENDING_SAMPLES = 10_000
_CHECK_GAP = 0.1  # seconds between weighings of the signs while something is happening
_PATHS_DETAIL_BYTES = 480  # make_event caps a detail at 512 bytes: cut at a path boundary


@dataclass(frozen=True)
class Location:
    """A directory to watch: where it came from, and whether a canary goes in it."""

    path: str
    kind: str  # "path" (configured); discovery adds "postgresql", "samba", "www", ...
    canary: bool


# A stray file in a database cluster's directory is not ours to add: no canary there.
_NO_CANARY_KINDS = frozenset(("postgresql", "mysql"))


def watch_locations(
    configured: list[str],
    discovered: list[DataLocation] | tuple[DataLocation, ...] = (),
    excluded: tuple[str, ...] = (),
) -> list[Location]:
    """Every location to watch: the configured paths, then what discovery finds.

    Discovery (sources/storage/data_locations.py, shared through the agent's
    DiscoveryFeed) has already left out [coverage] exclude; a location under
    [security.ransomware] exclude, a backup target or the state directory is
    left out here. Database data directories get no canary.
    """
    locations: dict[str, Location] = {}
    for path in configured:
        locations.setdefault(path, Location(path, "path", True))
    for found in discovered:
        if not _under_any(found.path, excluded):
            canary = found.kind not in _NO_CANARY_KINDS
            locations.setdefault(found.path, Location(found.path, found.kind, canary))
    return list(locations.values())


def backup_targets(jobs: list[BackupJob]) -> list[str]:
    """Local places backups write to: watching them would see every run as an encryption."""
    targets: list[str] = []
    for job in jobs:
        for place in (job.path, job.repository, job.restore_test_dir):
            if not place.startswith("/"):
                continue  # remote repositories (sftp:, s3:, ssh://) and unset keys
            fixed = place
            for index, char in enumerate(place):
                if char in "*?[":  # a glob: its fixed directory part
                    fixed = posixpath.dirname(place[:index])
                    break
            targets.append(fixed.rstrip("/") or "/")
    return targets


class RansomwareSource:
    """Watches data locations in a background thread; collect() hands out the signs found."""

    name = "ransomware"

    def __init__(
        self,
        *,
        watch: WatchSettings,
        locations: list[Location],
        excluded: list[str],
        package_locks: list[Path],
        package_logs: list[Path],
        proc_locks: Path,
        mounts_file: Path,
        settings: SecuritySettings,
        counters: SecurityCounters,
        feed: DiscoveryFeed | None = None,
    ) -> None:
        self.watch = watch
        self._mounts_file = mounts_file
        self._configured = [loc.path for loc in locations]
        self._locations = locations  # what the watcher thread watches now
        self._excluded = tuple(excluded)
        # What discovery last asked for, taken up by the watcher thread at its next step.
        self._wanted_lock = threading.Lock()
        self._wanted: list[Location] = list(locations)
        self._relocate = threading.Event()
        self._start_wanted = False
        self._feed = feed
        self._thresholds = watch.thresholds
        self._interval = watch.interval
        self._entropy_bits = watch.entropy_bits
        self._max_file_bytes = watch.max_file_bytes
        self._budget = max(2 * BLOCK, int(watch.read_bytes_per_second * watch.interval))
        self._max_directories = watch.max_directories
        self._canary_name = watch.canary_name if watch.canary else ""
        self._place_canaries = True  # False in a one-shot diagnostic (`collect`)
        self._locks = package_locks
        self._package_logs = package_logs
        self._proc_locks = proc_locks
        self._settings = settings
        self._counters = counters
        self._queue: EventQueue[None] = EventQueue(
            settings.max_events_per_report,
            settings.max_pending_events,
            counters,
            None,
            settings.max_event_bytes_per_report,
        )
        self._detector = Detector([loc.path for loc in locations], watch.thresholds)
        self._canaries: dict[str, str] = {}  # canary path -> its location
        self._tripped: set[str] = set()
        self._pending: dict[str, None] = {}  # paths to sample, oldest first
        self._spent = 0  # bytes sampled in this interval
        self._last_check = 0.0
        self._stop = threading.Event()
        self._tick_wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._rounds = 0
        self._round_done = threading.Condition()
        self._inotify: Inotify | None = None
        self.error = ""
        # What the watcher did, for tests, the bench and the log.
        self.events_seen = 0
        self.samples = 0
        self.samples_dropped = 0
        self.suppressed = 0
        if feed is not None:
            feed.listen(self._discovered)

    @property
    def rounds(self) -> int:
        """Watcher rounds completed (one per interval; the first: watches set up)."""
        with self._round_done:
            return self._rounds

    @property
    def canary_paths(self) -> list[str]:
        return sorted(self._canaries)

    def one_shot(self) -> str:
        """Watch without writing anything (for `collect`); the line that says so, or ""."""
        self._place_canaries = False
        if not self._canary_name:
            return ""
        return tr("ransomware: canaries are placed by the running agent, not by collect")

    @property
    def locations(self) -> list[Location]:
        """What the watcher is asked to watch now (configured paths and the last discovery)."""
        with self._wanted_lock:
            return list(self._wanted)

    def _discovered(self, found: Discovery) -> None:
        """A discovery round finished (in its thread): watch what it found from now on."""
        wanted = watch_locations(self._configured, found.locations, self._excluded)
        with self._wanted_lock:
            if wanted == self._wanted:
                return
            self._wanted = wanted
            start = self._start_wanted
        self._relocate.set()
        if self._inotify is not None:
            self._inotify.wake()
        if start:
            self.start()

    @property
    def watched_directories(self) -> int:
        return self._inotify.watched if self._inotify else 0

    @property
    def overflows(self) -> int:
        return self._inotify.overflows if self._inotify else 0

    @property
    def refused_directories(self) -> int:
        """Directories not watched because a watch limit was reached."""
        return self._inotify.refused if self._inotify else 0

    @property
    def skipped_network_mounts(self) -> int:
        return self._inotify.skipped_network if self._inotify else 0

    # --- the Source interface -----------------------------------------------------------
    def start(self) -> bool:
        """Start the watcher thread; False (nothing to wait for) when there is nothing to watch.

        Discovery is started too but never waited for: the watcher begins with the
        configured paths and takes up each discovery's locations when it arrives.
        """
        if self._feed is not None:
            self._feed.start()
        with self._wanted_lock:
            self._start_wanted = True
            if not self._wanted:
                return False  # no thread, no inotify instance: a server without data costs nothing
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="ransomware-watcher", daemon=True
                )
                self._thread.start()
        return True

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """Wait until the watcher has completed rounds rounds (the first: watches set up).

        An idle watcher sleeps until the kernel has an event; a waiter wakes it for
        a round each, so "rounds" never wait for activity that is not coming.
        """
        if self._thread is None:
            return True  # nothing to watch (yet): no round to wait for
        deadline = time.monotonic() + timeout
        with self._round_done:
            while self._rounds < rounds:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self._inotify is not None:
                    self._tick_wanted.set()
                    self._inotify.wake()
                self._round_done.wait(min(left, self._interval))
        return True

    @property
    def pending_samples(self) -> int:
        """Written files not read yet (the read budget of an interval was spent)."""
        return len(self._pending)

    def collect(self, report: pb.Report) -> None:
        self._queue.withdraw()
        self.start()
        handed = self._queue.hand_out(report)
        self._counters.fill(report.security_stats)
        if self.error and handed == 0:
            self._queue.withdraw()
            raise RuntimeError(self.error)

    def commit(self) -> None:
        self._queue.commit()

    def close(self) -> None:
        self._stop.set()
        if self._feed is not None:
            self._feed.close()
        if self._inotify is not None:
            self._inotify.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._inotify is not None:
            self._inotify.close()

    # --- the watcher thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._setup()
        except OSError as exc:
            self.error = f"ransomware watcher cannot start: {exc}"[:300]
            log.warning("%s", self.error)
            self._round()
            return
        self._round()
        next_tick = time.monotonic() + self._interval
        while not self._stop.is_set():
            try:
                if self._relocate.is_set():
                    self._relocate.clear()
                    self._take_up()
                self._step(next_tick)
                self.error = ""
            except Exception as exc:  # noqa: BLE001 - the watcher reports and goes on
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("ransomware watcher: %s", self.error)
                self._stop.wait(self._interval)
            now = time.monotonic()
            if now >= next_tick or self._tick_wanted.is_set():
                self._tick_wanted.clear()
                self._check(now)
                self._spent = 0
                next_tick = time.monotonic() + self._interval
                self._round()
            elif self._detector.busy() and now - self._last_check >= _CHECK_GAP:
                # Between ticks too, so a canary or a threshold reached is reported in a
                # tenth of a second, not at the end of the interval.
                self._check(now)

    def _round(self) -> None:
        with self._round_done:
            self._rounds += 1
            self._round_done.notify_all()

    def _setup(self) -> None:
        self._inotify = Inotify(self._max_directories, self._mounts_file)
        with self._wanted_lock:
            self._relocate.clear()
            self._locations = list(self._wanted)
        self._detector.set_roots([loc.path for loc in self._locations])
        for location in self._locations:
            self._begin(location)

    def _begin(self, location: Location) -> None:
        """Place the location's canary (where one belongs) and watch its tree."""
        if location.canary and self._canary_name and self._place_canaries:
            path = canaries.place(location.path, self._canary_name)
            if path is not None:
                self._canaries[path] = location.path
        self._ino.watch_tree(location.path, self._excluded)

    def _take_up(self) -> None:
        """Watch the locations discovery added; stop watching those it no longer finds."""
        with self._wanted_lock:
            wanted = list(self._wanted)
        old = {loc.path for loc in self._locations}
        new = {loc.path for loc in wanted}
        gone = old - new
        for path in sorted(gone):
            self._ino.forget(path)
            for canary in [c for c, root in self._canaries.items() if root == path]:
                del self._canaries[canary]
            log.info("ransomware: %s is no longer a data location: not watched", path)
        self._locations = wanted
        self._detector.set_roots([loc.path for loc in wanted])
        for location in wanted:
            if location.path not in old:
                log.info("ransomware: watching %s (%s)", location.path, location.kind)
                self._begin(location)
            elif any(_under_any(location.path, (g,)) for g in gone):
                # Its directories were under a location that went away: watched again.
                self._ino.watch_tree(location.path, self._excluded)

    @property
    def _ino(self) -> Inotify:
        if self._inotify is None:
            raise RuntimeError("the watcher has not started")
        return self._inotify

    def _step(self, next_tick: float) -> None:
        timeout: float | None = max(0.0, min(next_tick - time.monotonic(), _CHECK_GAP))
        if self._pending and self._spent < self._budget:
            timeout = 0.0  # samples waiting and budget left: read them now
        elif not self._pending and not self._detector.busy():
            # Nothing in any window: sleep until the kernel has an event (or close() or
            # wait_rounds() wakes us). An idle tree costs no wake-ups at all.
            timeout = None
        events = self._ino.read(timeout)
        self.events_seen += len(events)
        self._handle(events, time.monotonic())
        self._sample()

    def _check(self, now: float) -> None:
        self._last_check = now
        for sign in self._detector.check(now):
            self._report(sign)

    def _handle(self, events: list[FileEvent], now: float) -> None:
        moved_from: dict[int, FileEvent] = {}
        for event in events:
            if not self._special(event, now):
                self._one(event, moved_from, now)
        for event in moved_from.values():  # moved out of the watched trees: gone from here
            if event.is_dir:
                self._ino.forget(event.path)
            else:
                self._pending.pop(event.path, None)
                self._detector.deleted(event.path, now)

    def _special(self, event: FileEvent, now: float) -> bool:
        """Handle an overflow, an excluded path, a canary or a location going away; True if done."""
        if event.mask & IN_Q_OVERFLOW:
            log.warning("ransomware: the kernel dropped file events (queue overflow)")
            for location in self._locations:  # pick up directories made meanwhile
                self._ino.watch_tree(location.path, self._excluded)
            return True
        path = event.path
        if _under_any(path, self._excluded):
            return True
        if (
            path in self._canaries
            and path not in self._tripped
            and event.mask & (_CANARY_CHANGES | IN_MOVED_TO)
        ):
            self._tripped.add(path)
            self._detector.canary(self._canaries[path], path, now)
            return True
        if event.mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            if path in {loc.path for loc in self._locations}:
                log.warning("ransomware: watched location %s was removed or moved", path)
            return True
        return False

    def _one(self, event: FileEvent, moved_from: dict[int, FileEvent], now: float) -> None:
        if event.mask & IN_MOVED_FROM:
            moved_from[event.cookie] = event
        elif event.mask & IN_MOVED_TO:
            self._moved_to(moved_from.pop(event.cookie, None), event, now)
        elif event.mask & IN_CREATE:
            self._created(event, now)
        elif event.mask & IN_DELETE and not event.is_dir:
            self._pending.pop(event.path, None)
            self._detector.deleted(event.path, now)
        elif event.mask & IN_CLOSE_WRITE and not event.is_dir:
            self._want_sample(event.path)

    def _moved_to(self, old: FileEvent | None, event: FileEvent, now: float) -> None:
        if event.is_dir:
            if old is not None:
                self._ino.forget(old.path)
                self._ino.watch_tree(event.path, self._excluded)
            else:
                self._created(event, now)
            return
        if old is not None:
            if old.path in self._pending:
                del self._pending[old.path]
            self._detector.renamed(old.path, event.path, now)
        else:
            self._detector.created(event.path, now)
        self._want_sample(event.path)

    def _created(self, event: FileEvent, now: float) -> None:
        self._detector.created(event.path, now)
        if event.is_dir:
            # Files may land in a new directory before its watch exists: look at them too.
            for path in self._ino.watch_tree(event.path, self._excluded):
                self._detector.created(path, now)
                self._want_sample(path)

    def _want_sample(self, path: str) -> None:
        if path in self._pending:
            return
        if len(self._pending) >= _MAX_PENDING_SAMPLES:
            self._pending.pop(next(iter(self._pending)))
            self.samples_dropped += 1
        self._pending[path] = None

    def _sample(self) -> None:
        """Sample pending files until this interval's read budget is spent."""
        while self._pending and self._spent < self._budget:
            path = next(iter(self._pending))
            del self._pending[path]
            kind = claimed_type(path)
            if not kind:
                continue  # the name claims no type: nothing to contradict, nothing read
            taken = sample(path, self._max_file_bytes)
            self.samples += 1
            if taken is None:
                continue
            head, middle, _ = taken
            self._spent += len(head) + len(middle)
            sign = content_sign(kind, head, middle, self._entropy_bits)
            if sign:
                self._detector.suspicious_content(path, sign, time.monotonic())

    def _report(self, sign: Sign) -> None:
        if sign.sign != "canary":
            reason = package_activity(
                self._locks,
                self._package_logs,
                self._proc_locks,
                time.time() - self._thresholds.window,
            )
            if reason:
                self.suppressed += 1
                log.info(
                    "ransomware: %s under %s while the package manager ran (%s): not reported",
                    sign.sign,
                    sign.root,
                    reason,
                )
                return
        details = {
            "sign": sign.sign,
            "files_touched": str(sign.files_touched),
            "paths": _bounded_lines(sign.paths),
            "location": sign.root,
            "window_seconds": f"{self._thresholds.window:g}",
        }
        if sign.extension:
            details["extension"] = sign.extension
        if sign.note_name:
            details["note_name"] = sign.note_name
        if sign.directories:
            details["directories"] = str(sign.directories)
        event = make_event(
            self.name,
            sign.type,
            "critical",
            time.time(),
            technique=sign.technique,
            raw=f"{sign.sign}: {sign.files_touched} files touched under {sign.root}",
            raw_max_bytes=self._settings.raw_max_bytes,
            details=details,
            path=sign.path,
        )
        log.warning("ransomware: %s under %s (%s)", sign.sign, sign.root, sign.path)
        self._queue.push(event, None)


def _bounded_lines(paths: tuple[str, ...]) -> str:
    kept: list[str] = []
    size = 0
    for path in paths:
        size += len(path.encode("utf-8", "replace")) + 1
        if kept and size > _PATHS_DETAIL_BYTES:
            break
        kept.append(path)
    return "\n".join(kept)


def _under_any(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _absolute_paths(table: Table, key: str) -> list[str]:
    paths = table.string_list(key, [])
    for path in paths:
        if not path.startswith("/"):
            raise table.error(key, tr("must hold absolute paths, got {value}", value=repr(path)))
    return [path.rstrip("/") or "/" for path in paths]


@dataclass(frozen=True)
class WatchSettings:
    """The keys of [security.ransomware] (README and docs/ransomware.md give each default)."""

    paths: tuple[str, ...] = ()
    # Also watch the data locations [coverage] discovery finds (false: only `paths`).
    watch_discovered: bool = True
    exclude: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    interval: float = 1.0
    entropy_bits: float = 7.5
    max_file_bytes: int = 1024**3
    read_bytes_per_second: int = 4 * 1024 * 1024
    max_directories: int = 100_000
    canary: bool = True
    canary_name: str = canaries.DEFAULT_NAME
    # As [security.fim]'s: held, or written within the window, means the package manager ran.
    package_locks: tuple[str, ...] = DEFAULT_LOCKS
    package_logs: tuple[str, ...] = DEFAULT_PACKAGE_LOGS


def parse_watch(table: Table) -> WatchSettings:
    """Read [security.ransomware]; every bad value is one ConfigError naming its key."""
    d = WatchSettings()
    t = d.thresholds
    thresholds = Thresholds(
        window=table.duration("window", t.window, minimum=1.0),
        burst_files=table.integer("burst_files", t.burst_files, minimum=2),
        rename_files=table.integer("rename_files", t.rename_files, minimum=2),
        note_directories=table.integer("note_directories", t.note_directories, minimum=2),
        deletion_files=table.integer("deletion_files", t.deletion_files, minimum=2),
    )
    bits = table.number("entropy_bits", d.entropy_bits, minimum=1.0)
    table.check(
        "entropy_bits",
        bits,
        lambda value: value <= 8.0,
        lambda: tr("must be at most 8 (bits per byte), got {value}", value=bits),
    )
    name = table.string("canary_name", d.canary_name)
    table.check(
        "canary_name",
        name,
        lambda value: "/" not in value and value not in (".", ".."),
        lambda: tr("must be a file name without '/', got {value}", value=repr(name)),
    )
    watch = WatchSettings(
        paths=tuple(_absolute_paths(table, "paths")),
        watch_discovered=table.boolean("watch_discovered", d.watch_discovered),
        exclude=tuple(_absolute_paths(table, "exclude")),
        thresholds=thresholds,
        interval=table.duration("interval", d.interval, minimum=0.05),
        entropy_bits=bits,
        max_file_bytes=table.size("max_file_bytes", d.max_file_bytes, minimum=BLOCK),
        read_bytes_per_second=table.size(
            "read_bytes_per_second", d.read_bytes_per_second, minimum=BLOCK
        ),
        max_directories=table.integer("max_directories", d.max_directories, minimum=1),
        canary=table.boolean("canary", d.canary),
        canary_name=name,
        package_locks=tuple(table.string_list("package_locks", list(d.package_locks))),
        package_logs=tuple(table.string_list("package_logs", list(d.package_logs))),
    )
    table.finish()
    return watch


@register("ransomware", default_enabled=True)
def ransomware_factory(root: Table, context: SourceContext) -> RansomwareSource:
    """Read [security.ransomware]; no I/O here (check-config runs this too)."""
    settings = security_settings(root)
    watch = parse_watch(root.table("security").table("ransomware"))
    configure_feed(root, context)  # the data locations discovery finds are watched too
    return RansomwareSource(
        watch=watch,
        locations=watch_locations(list(watch.paths)),
        # Backups write archives and repositories full of high-entropy files: never watched.
        excluded=[*watch.exclude, *backup_targets(parse_backups(root)), str(context.state_dir)],
        feed=context.discoveries if watch.watch_discovered else None,
        package_locks=[Path(p) for p in watch.package_locks],
        package_logs=[Path(p) for p in watch.package_logs],
        proc_locks=context.proc_root / "locks",
        mounts_file=context.proc_root / "self" / "mounts",
        settings=settings,
        counters=counters_for(context.state_dir),
    )
