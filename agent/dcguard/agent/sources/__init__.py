"""The source registry: each source is one module that knows one thing.

A source module registers itself once with @register(name, default_enabled),
like node_exporter's collectors. Its factory receives the whole config and
reads only its own table, so a disabled source's settings are still
validated. Factories must not do I/O: they run for check-config too.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

if TYPE_CHECKING:
    from dcguard.agent.sources.storage.discovery_feed import DiscoveryFeed

__all__ = [
    "REGISTRY",
    "BackgroundSource",
    "Source",
    "SourceContext",
    "SourceSpec",
    "load_all",
    "register",
]


def _new_feed() -> DiscoveryFeed:
    # Imported here: the feed's modules import this package.
    from dcguard.agent.sources.storage.discovery_feed import DiscoveryFeed

    return DiscoveryFeed()


@dataclass(frozen=True)
class SourceContext:
    """What every source may know about the agent it runs in."""

    host: str
    interval: float
    state_dir: Path
    # Where the kernel's views are read ([agent] proc_root, sys_root): a test or
    # an odd host points every source at a recorded /proc and /sys at once.
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    # One discovery of data locations per interval for every source that needs it
    # (coverage reports it, the ransomware watcher watches it): shared through here.
    discoveries: DiscoveryFeed = field(default_factory=_new_feed, compare=False)


class Source(Protocol):
    """A source adds what it knows to a report; it never touches the network."""

    name: str

    def collect(self, report: pb.Report) -> None:
        """Fill this source's part of the report; raise on failure."""

    def commit(self) -> None:
        """The report last filled is now durably stored: persist read positions.

        A source that tails a log advances its saved position here, never in
        collect(), so a crash between the two re-reads lines instead of
        losing them, and the durable store deduplicates nothing twice.
        """

    def close(self) -> None:
        """Release threads or files; called once when the agent stops."""


@runtime_checkable
class BackgroundSource(Source, Protocol):
    """A source that reads in a background thread (SMART, backups, the kernel journal).

    Until its first round it reports "not known yet" as a failure; the agent
    starts it and waits for that round (report_builder.prime) before the first
    report, so the first report is as true as the later ones.
    """

    def start(self) -> bool:
        """Start the background thread; False when this source reads inline (no round to await)."""

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """Wait until the background thread has completed rounds rounds; False on timeout."""


Factory = Callable[[Table, SourceContext], Source]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    default_enabled: bool
    factory: Factory


REGISTRY: dict[str, SourceSpec] = {}


def register(name: str, *, default_enabled: bool) -> Callable[[Factory], Factory]:
    """Register a source factory under a unique name."""

    def wrap(factory: Factory) -> Factory:
        if name in REGISTRY:
            raise ValueError(f"source {name!r} is registered twice")
        REGISTRY[name] = SourceSpec(name, default_enabled, factory)
        return factory

    return wrap


def load_all() -> dict[str, SourceSpec]:
    """Import every source module in this package so each registers itself.

    Subpackages (storage/, security/) hold what sources share; they are not sources.
    """
    for module in pkgutil.iter_modules(__path__):
        if not module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY
