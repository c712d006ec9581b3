"""Where this server keeps data that matters: the directories a backup must cover.

Found from what runs and what is configured: PostgreSQL data directories (a
running postgres' -D and its postgresql.conf, /etc/postgresql/*/*/postgresql.conf),
MySQL/MariaDB datadir (a running mysqld/mariadbd, my.cnf and its !include/!includedir),
Samba shares (`path =` of each enabled, non-printer section of smb.conf), each
directory under the roots (/var/www, /srv, /home), and the paths the config names;
minus the excluded paths. Only directories that hold data count: at least one regular
file whose name does not start with "." (a home with only a skeleton's dotfiles, an
empty /srv/ftp do not).

Discovery never enters a network filesystem (the mount table, parsed by the
filesystem source's parse_mounts, names them; a location on one lies on another
server and is not this server's to back up), never follows symbolic links while
walking, and is bounded: max_files directory entries and max_seconds in all. When a
bound stops it, the locations it did not finish looking at are kept (a bound never
hides an unbacked directory) and `incomplete` says which bound and where.

This module is the one place that knows where data lives: the coverage source
reports it, and a watcher that needs the same answer imports discover().
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dcguard.agent.sources.filesystem import parse_mounts
from dcguard.agent.sources.storage.blockdev import NETWORK_FSTYPES

__all__ = [
    "KINDS",
    "MAX_LOCATIONS",
    "DataLocation",
    "Discovery",
    "DiscoveryContext",
    "DiscoveryLimits",
    "discover",
]

# In the order a path found twice keeps: what a service says it is wins over a root.
KINDS = ("postgresql", "mysql", "samba", "configured", "web", "srv", "home")
# Reported at most; more are cut with a note (the collector exports one series each).
MAX_LOCATIONS = 200
_MAX_CONFIG_FILES = 64  # my.cnf/smb.conf includes followed, in all: an include loop ends
_MAX_CONFIG_BYTES = 1024 * 1024
_SKIPPED_SHARES = frozenset(("global", "printers", "print$", "homes"))
_FALSE = frozenset(("no", "false", "0", "off"))
_TRUE = frozenset(("yes", "true", "1", "on"))
_MYSQL_SECTIONS = re.compile(r"(mysqld|mariadb|mariadbd|server)(-[0-9.]+)?")
_PG_SETTING = re.compile(r"""^\s*data_directory\s*=?\s*(?:'((?:[^']|'')*)'|(\S+))""")
_PG_CLUSTER = re.compile(r"/postgresql/([0-9.]+)/([^/]+)/?$")


@dataclass(frozen=True)
class DataLocation:
    """A directory that holds data: its real path, what kind of data, and whose.

    owner names it within its kind: a PostgreSQL cluster ("15/main"), a Samba share
    name, the directory's name under a root; "" when nothing more is known.
    """

    path: str
    kind: str
    owner: str = ""


@dataclass(frozen=True)
class DiscoveryContext:
    """Where discovery reads: every path is a config key, so tests use fixture trees."""

    proc_root: Path = Path("/proc")
    mounts_file: Path = Path("/proc/self/mounts")
    postgresql_conf_dir: Path = Path("/etc/postgresql")
    mysql_conf: Path = Path("/etc/mysql/my.cnf")
    smb_conf: Path = Path("/etc/samba/smb.conf")
    roots: tuple[str, ...] = ("/var/www", "/srv", "/home")
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiscoveryLimits:
    max_files: int = 100_000  # directory entries looked at, over all locations
    max_seconds: float = 60.0


@dataclass
class Discovery:
    locations: list[DataLocation] = field(default_factory=list)
    incomplete: str = ""  # "": discovery finished; else which bound stopped it, in one line


def discover(
    context: DiscoveryContext,
    limits: DiscoveryLimits,
    clock: Callable[[], float] = time.monotonic,
) -> Discovery:
    """Every data location of this server, in KINDS order then by path."""
    network = _network_mounts(context.mounts_file)
    candidates: dict[str, DataLocation] = {}
    for location in _candidates(context):
        # By name first: resolving a path on a hung NFS mount hangs.
        if _inside_any(location.path, network):
            continue
        real = _real(location.path)
        if real is None or _inside_any(real, network) or _inside_any(real, context.exclude):
            continue
        candidates.setdefault(real, DataLocation(real, location.kind, location.owner))
    ordered = sorted(candidates.values(), key=lambda d: (KINDS.index(d.kind), d.path))
    walker = _Walker(limits, network, context.exclude, clock)
    result = Discovery()
    for location in ordered:
        if walker.holds_data(location.path):
            result.locations.append(location)
    result.incomplete = walker.stopped
    if len(result.locations) > MAX_LOCATIONS:
        result.locations = result.locations[:MAX_LOCATIONS]
        result.incomplete = result.incomplete or (
            f"more than {MAX_LOCATIONS} data locations; the first {MAX_LOCATIONS} are reported"
        )
    return result


# -- candidates ----------------------------------------------------------------------


def _candidates(context: DiscoveryContext) -> Iterator[DataLocation]:
    yield from _postgresql(context)
    yield from _mysql(context)
    yield from _samba(context.smb_conf)
    for path in context.paths:
        yield DataLocation(path, "configured")
    for root, kind in _roots(context.roots):
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "lost+found":
                continue
            if entry.is_dir(follow_symlinks=False):
                yield DataLocation(entry.path, kind, entry.name)


def _roots(roots: Iterable[str]) -> Iterator[tuple[str, str]]:
    for root in roots:
        name = root.rstrip("/").rsplit("/", 1)[-1]
        yield root, {"www": "web", "srv": "srv", "home": "home"}.get(name, "configured")


def _processes(proc_root: Path, names: frozenset[str]) -> Iterator[tuple[Path, list[str]]]:
    """(/proc/PID, argv) of every process whose command name is in names."""
    try:
        pids = [entry for entry in os.scandir(proc_root) if entry.name.isdigit()]
    except OSError:
        return
    for pid in pids:
        base = Path(pid.path)
        try:
            if (base / "comm").read_text().strip() not in names:
                continue
            argv = (base / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone, or not ours to read
        yield base, [arg for arg in argv if arg]


def _absolute(path: str, process: Path) -> str:
    """A process' relative path resolved against its working directory."""
    if path.startswith("/"):
        return path
    try:
        return str((process / "cwd").readlink() / path)
    except OSError:
        return ""


def _option(argv: list[str], short: str, long: str) -> str:
    """The value of -X V, -XV, --long=V or --long V; the last one wins, as for the programs."""
    value = ""
    for index, arg in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if short and arg == short:
            value = following
        elif short and arg.startswith(short) and not arg.startswith("--"):
            value = arg[len(short) :]
        elif arg == long:
            value = following
        elif arg.startswith(long + "="):
            value = arg[len(long) + 1 :]
    return value


def _settings(argv: list[str]) -> dict[str, str]:
    """postgres' `-c name=value` and `--name=value` settings."""
    found: dict[str, str] = {}
    for index, arg in enumerate(argv):
        setting = ""
        if arg == "-c" and index + 1 < len(argv):
            setting = argv[index + 1]
        elif arg.startswith("--") and "=" in arg:
            setting = arg[2:]
        name, _, value = setting.partition("=")
        if value:
            found[name.replace("-", "_")] = value
    return found


def _postgresql(context: DiscoveryContext) -> Iterator[DataLocation]:
    for process, argv in _processes(context.proc_root, frozenset(("postgres", "postmaster"))):
        settings = _settings(argv)
        directory = _absolute(_option(argv, "-D", "--pgdata"), process)
        data = settings.get("data_directory", "")
        if not data:
            conf = settings.get("config_file") or (directory and f"{directory}/postgresql.conf")
            data = _pg_data_directory(Path(_absolute(conf, process))) if conf else ""
        data = data or directory
        if data:
            yield DataLocation(data, "postgresql", _pg_owner(data))
    try:
        confs = sorted(context.postgresql_conf_dir.glob("*/*/postgresql.conf"))
    except OSError:
        confs = []
    for found in confs:
        data = _pg_data_directory(found)
        if data:
            owner = f"{found.parent.parent.name}/{found.parent.name}"
            yield DataLocation(data, "postgresql", owner)


def _pg_data_directory(conf: Path) -> str:
    data = ""
    for line in _read_lines(conf):
        match = _PG_SETTING.match(line)
        if match:
            quoted, bare = match.groups()
            data = quoted.replace("''", "'") if quoted is not None else bare
    return data if data.startswith("/") else ""


def _pg_owner(data: str) -> str:
    match = _PG_CLUSTER.search(data)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    try:
        return (Path(data) / "PG_VERSION").read_text().strip()[:16]
    except OSError:
        return ""


def _mysql(context: DiscoveryContext) -> Iterator[DataLocation]:
    running = list(_processes(context.proc_root, frozenset(("mysqld", "mariadbd"))))
    for process, argv in running:
        data = _absolute(_option(argv, "", "--datadir"), process)
        if data:
            yield DataLocation(data, "mysql")
    configured = _mysql_datadir(context.mysql_conf)
    if configured:
        yield DataLocation(configured, "mysql")
    elif running:
        yield DataLocation("/var/lib/mysql", "mysql")  # the compiled-in default


def _mysql_datadir(conf: Path) -> str:
    """datadir of the server's sections in my.cnf and what it includes; the last one wins."""
    datadir, section = "", ""
    for line in _ini_lines(conf, mysql=True):
        if line.startswith("["):
            section = line.strip("[] ").lower()
            continue
        key, _, value = line.partition("=")
        if _MYSQL_SECTIONS.fullmatch(section) and key.strip().replace("-", "_") == "datadir":
            datadir = value.strip().strip("\"'")
    return datadir if datadir.startswith("/") else ""


def _samba(conf: Path) -> Iterator[DataLocation]:
    shares: dict[str, dict[str, str]] = {}
    section = ""
    for line in _ini_lines(conf, mysql=False):
        if line.startswith("["):
            section = line.strip("[] ")  # as written: it is the share's name on the network
            shares.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        if section:
            shares[section][" ".join(key.lower().split())] = value.strip()
    for name, keys in shares.items():
        path = keys.get("path", "")
        if (
            name.lower() in _SKIPPED_SHARES
            or not path.startswith("/")
            or "%" in path  # a per-user substitution: not one directory
            or keys.get("available", "yes").lower() in _FALSE
            or keys.get("printable", keys.get("print ok", "no")).lower() in _TRUE
        ):
            continue
        yield DataLocation(path, "samba", name)


def _ini_lines(conf: Path, *, mysql: bool, seen: set[Path] | None = None) -> Iterator[str]:
    """Lines of an INI-style file without comments, its includes read in place.

    my.cnf: `!include FILE`, `!includedir DIR` (its *.cnf in name order).
    smb.conf: `include = FILE`. Bounded in files, so an include loop ends.
    """
    seen = set() if seen is None else seen
    if conf in seen or len(seen) >= _MAX_CONFIG_FILES:
        return
    seen.add(conf)
    for raw in _read_lines(conf):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if mysql and line.startswith("!include "):
            yield from _ini_lines(Path(line.split(None, 1)[1]), mysql=mysql, seen=seen)
        elif mysql and line.startswith("!includedir "):
            directory = Path(line.split(None, 1)[1])
            try:
                names = sorted(directory.glob("*.cnf"))
            except OSError:
                names = []
            for name in names:
                yield from _ini_lines(name, mysql=mysql, seen=seen)
        elif not mysql and line.partition("=")[0].strip().lower() == "include":
            target = line.partition("=")[2].strip()
            if target.startswith("/") and "%" not in target:
                yield from _ini_lines(Path(target), mysql=mysql, seen=seen)
        else:
            yield line


def _read_lines(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            return handle.read(_MAX_CONFIG_BYTES).decode(errors="replace").splitlines()
    except OSError:
        return []


# -- where and what ------------------------------------------------------------------


def _network_mounts(mounts_file: Path) -> tuple[str, ...]:
    try:
        text = mounts_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    return tuple(m.mountpoint for m in parse_mounts(text) if m.fstype in NETWORK_FSTYPES)


def _inside(path: str, top: str) -> bool:
    top = top.rstrip("/") or "/"
    return path == top or path.startswith(top if top == "/" else top + "/")


def _inside_any(path: str, tops: Iterable[str]) -> bool:
    return any(_inside(path, top) for top in tops)


def _real(path: str) -> str | None:
    """The canonical path of a directory, or None when it is not one (absent, a file)."""
    if not path.startswith("/"):
        return None
    real = os.path.realpath(path)
    return real if Path(real).is_dir() else None


class _Walker:
    """Tells whether a directory holds data, within one discovery's shared bounds."""

    def __init__(
        self,
        limits: DiscoveryLimits,
        network: tuple[str, ...],
        exclude: tuple[str, ...],
        clock: Callable[[], float],
    ) -> None:
        self._limits = limits
        self._skip = network + exclude
        self._clock = clock
        self._deadline = clock() + limits.max_seconds
        self._entries = 0
        self.stopped = ""

    def holds_data(self, top: str) -> bool:
        """True at the first non-hidden regular file; True too once a bound stops the walk."""
        if self.stopped:
            return True
        pending = [top]
        while pending:
            directory = pending.pop()
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        self._entries += 1
                        if self._bound_reached(top):
                            return True
                        if entry.name.startswith("."):
                            continue  # skeleton dotfiles, caches: not the data at risk
                        # Checked by name before any stat: stat'ing a hung NFS mount hangs.
                        if _inside_any(entry.path, self._skip):
                            continue
                        if entry.is_file(follow_symlinks=False):
                            return True
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
            except OSError:
                continue  # unreadable or gone: it shows no data
        return False

    def _bound_reached(self, where: str) -> bool:
        if self._entries > self._limits.max_files:
            self.stopped = (
                f"discovery stopped at {where} after {self._limits.max_files} directory "
                "entries (max_files); the locations not looked at in full are counted"
            )
        elif self._entries % 256 == 0 and self._clock() > self._deadline:
            self.stopped = (
                f"discovery stopped at {where} after {self._limits.max_seconds:g} s "
                "(max_duration); the locations not looked at in full are counted"
            )
        return bool(self.stopped)
