"""The ransomware signs: what a stream of file events under one watched location adds up to.

Fed with what inotify saw (written, renamed, created, deleted) and with the
verdicts of sampled reads, a Detector keeps sliding windows per location and
says when a sign holds:
- entropy_burst / header_mismatch: burst_files rewritten files whose content
  contradicts their type (filetypes.content_sign);
- mass_rename: rename_files files renamed to one new, unknown extension;
- ransom_note: one file name created in note_directories directories that
  existed before the window (copying a tree creates its directories too);
- mass_deletion: deletion_files files deleted that were older than the window
  and were not replaced by a compressed copy (gzip, logrotate);
- canary: anything written, renamed or deleted on a canary file.
A sign fires at most once per window per location, so a long attack gives
one event a window, not one per file.
"""

from __future__ import annotations

import posixpath
import re
from collections import deque
from dataclasses import dataclass, field

from dcguard.agent.sources.security.filetypes import extension, is_known_type

__all__ = ["Detector", "Sign", "Thresholds"]

# Renames that commit a temporary file under its real name (editors, dpkg, databases).
_TEMP_EXTENSIONS = frozenset(
    ("tmp", "temp", "part", "partial", "new", "swp", "bak", "old", "orig", "crdownload")
)
_TEMP_NAME = re.compile(r"(^\.?~|^\.~lock\.|~$|\.dpkg-[a-z]+$|\.ucf-[a-z]+$|\.sw[a-p]$)")
# What a copy leaves in every directory without being a note.
_COMMON_NAMES = frozenset(
    (".ds_store", "thumbs.db", "desktop.ini", ".gitignore", ".gitkeep", ".keep", "__init__.py")
)
_NOTE_EXTENSIONS = frozenset(("", "txt", "html", "htm", "hta", "url", "rtf", "md", "png", "bmp"))
# gzip, bzip2, xz, zstd, lz4, compress: "x" deleted after "x.gz" was written is a rotation.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".lzma", ".zip")
EXAMPLES = 5
_MAX_TRACKED = 50_000  # paths remembered per window and location at most (a memory bound)


@dataclass(frozen=True)
class Thresholds:
    window: float = 60.0
    burst_files: int = 8
    rename_files: int = 8
    note_directories: int = 5
    deletion_files: int = 200


@dataclass(frozen=True)
class Sign:
    """A sign that holds: what the event says."""

    sign: str
    root: str
    path: str
    files_touched: int
    paths: tuple[str, ...]
    extension: str = ""
    note_name: str = ""
    directories: int = 0  # ransom_note: directories the note appeared in (not files_touched)

    @property
    def type(self) -> str:
        return "mass_deletion" if self.sign == "mass_deletion" else "ransomware_suspected"

    @property
    def technique(self) -> str:
        return "T1485" if self.sign == "mass_deletion" else "T1486"


@dataclass
class _Window:
    """Timestamped items of one kind, pruned to the window."""

    items: deque[tuple[float, str]] = field(default_factory=deque)

    def add(self, when: float, item: str) -> None:
        self.items.append((when, item))
        if len(self.items) > _MAX_TRACKED:
            self.items.popleft()

    def prune(self, since: float) -> None:
        while self.items and self.items[0][0] < since:
            self.items.popleft()

    def distinct(self) -> list[str]:
        return list(dict.fromkeys(item for _, item in self.items))


class _Location:
    def __init__(self, root: str) -> None:
        self.root = root
        self.suspicious = _Window()
        self.renames: dict[str, _Window] = {}
        self.notes: dict[str, _Window] = {}
        self.deletions = _Window()
        self.created: dict[str, float] = {}  # files and directories created in the window
        self.touched: dict[str, float] = {}  # files with a suspicious change in the window
        self.fired: dict[str, float] = {}  # sign -> when it last fired


class Detector:
    """Sliding windows of file activity per location; check() returns the signs that hold."""

    def __init__(self, roots: list[str], thresholds: Thresholds) -> None:
        self._t = thresholds
        self._locations = {root: _Location(root) for root in roots}
        self._pending: list[Sign] = []

    def set_roots(self, roots: list[str]) -> None:
        """Watch these roots from now on: new ones start empty, kept ones keep their windows."""
        self._locations = {root: self._locations.get(root) or _Location(root) for root in roots}

    def _location(self, path: str) -> _Location | None:
        best: _Location | None = None
        for root, location in self._locations.items():
            if (path == root or path.startswith(root.rstrip("/") + "/")) and (
                best is None or len(root) > len(best.root)
            ):
                best = location
        return best

    # --- what happened ------------------------------------------------------------------
    def created(self, path: str, when: float) -> None:
        """A file or directory appeared (IN_CREATE / a new directory's contents)."""
        location = self._location(path)
        if location is None:
            return
        if len(location.created) < _MAX_TRACKED:
            location.created[path] = when
        name = posixpath.basename(path)
        parent = posixpath.dirname(path)
        if (
            name.lower() in _COMMON_NAMES
            or _TEMP_NAME.search(name)
            or extension(name) not in _NOTE_EXTENSIONS
            or parent in location.created  # a directory made in the window: a copy, not a note
        ):
            return
        location.notes.setdefault(name, _Window()).add(when, parent)

    def suspicious_content(self, path: str, sign: str, when: float) -> None:
        """A sampled file's content contradicts its type (sign: entropy_burst / header_mismatch)."""
        location = self._location(path)
        if location is None:
            return
        location.suspicious.add(when, f"{sign}\0{path}")
        self._touch(location, path, when)

    def renamed(self, old: str, new: str, when: float) -> None:
        """old was renamed to new (both known: a rename within the watched trees)."""
        location = self._location(new)
        if location is None:
            return
        if old in location.touched:
            location.touched[new] = location.touched.pop(old)
        if old in location.created:
            location.created[new] = location.created.pop(old)
        old_ext, new_ext = extension(old), extension(new)
        if (
            new_ext == old_ext
            or not new_ext
            or new_ext.isdigit()  # log rotation: x.log -> x.log.1
            or is_known_type(new_ext)
            or new_ext in _TEMP_EXTENSIONS
            or old_ext in _TEMP_EXTENSIONS
            or _TEMP_NAME.search(posixpath.basename(old))
        ):
            return
        location.renames.setdefault(new_ext, _Window()).add(when, new)
        self._touch(location, new, when)

    def deleted(self, path: str, when: float) -> None:
        """A file was deleted."""
        location = self._location(path)
        if location is None:
            return
        born = location.created.pop(path, None)
        location.touched.pop(path, None)
        if born is not None and born >= when - self._t.window:
            return  # a temporary file: made and removed within the window
        if _TEMP_NAME.search(posixpath.basename(path)):
            return
        if any(posixpath.lexists(path + suffix) for suffix in COMPRESSED_SUFFIXES):
            return  # replaced by its compressed copy (gzip, logrotate's compress)
        location.deletions.add(when, path)

    def canary(self, root: str, path: str, when: float) -> None:
        """A canary was written, renamed or deleted: a certain sign, reported at once."""
        location = self._location(path)
        touched = len(location.touched) if location else 0
        self._pending.append(Sign("canary", root, path, max(1, touched), (path,)))

    def _touch(self, location: _Location, path: str, when: float) -> None:
        if len(location.touched) < _MAX_TRACKED:
            location.touched[path] = when

    def busy(self) -> bool:
        """True while anything is in a window (check() must keep running to age it out)."""
        return bool(self._pending) or any(
            location.suspicious.items
            or location.deletions.items
            or location.renames
            or location.notes
            or location.created
            or location.touched
            for location in self._locations.values()
        )

    # --- what it adds up to -------------------------------------------------------------
    def check(self, now: float) -> list[Sign]:
        """The signs that hold now (each at most once per window per location)."""
        signs, self._pending = self._pending, []
        since = now - self._t.window
        for location in self._locations.values():
            self._prune(location, since)
            for sign in self._signs(location):
                last = location.fired.get(sign.sign)
                if last is not None and last >= since:
                    continue
                location.fired[sign.sign] = now
                signs.append(sign)
        return signs

    def _prune(self, location: _Location, since: float) -> None:
        location.suspicious.prune(since)
        location.deletions.prune(since)
        for table in (location.renames, location.notes):
            for key in list(table):
                table[key].prune(since)
                if not table[key].items:
                    del table[key]
        for mapping in (location.created, location.touched):
            for key in [k for k, t in mapping.items() if t < since]:
                del mapping[key]

    def _signs(self, location: _Location) -> list[Sign]:
        t = self._t
        signs: list[Sign] = []
        touched = len(location.touched)
        suspicious = location.suspicious.distinct()
        if len(suspicious) >= t.burst_files:
            kinds = [item.split("\0", 1)[0] for item in suspicious]
            kind = max(set(kinds), key=kinds.count)
            paths = [item.split("\0", 1)[1] for item in suspicious]
            signs.append(self._sign(kind, location, paths, touched))
        for ext, window in location.renames.items():
            renamed = window.distinct()
            if len(renamed) >= t.rename_files:
                signs.append(self._sign("mass_rename", location, renamed, touched, extension=ext))
                break
        for name, window in location.notes.items():
            directories = window.distinct()
            if len(directories) >= t.note_directories:
                paths = [posixpath.join(d, name) for d in directories]
                signs.append(
                    self._sign(
                        "ransom_note",
                        location,
                        paths,
                        touched,
                        note_name=name,
                        directories=len(directories),
                    )
                )
                break
        deleted = location.deletions.distinct()
        if len(deleted) >= t.deletion_files:
            signs.append(self._sign("mass_deletion", location, deleted, len(deleted)))
        return signs

    @staticmethod
    def _sign(
        sign: str,
        location: _Location,
        paths: list[str],
        touched: int,
        *,
        extension: str = "",
        note_name: str = "",
        directories: int = 0,
    ) -> Sign:
        return Sign(
            sign,
            location.root,
            paths[0],
            max(touched, len(paths)),
            tuple(paths[:EXAMPLES]),
            extension=extension,
            note_name=note_name,
            directories=directories,
        )
