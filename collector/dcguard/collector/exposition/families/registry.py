"""The metric groups a collector serves, and rendering a host through all of them."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Callable, Protocol

from dcguard.collector.exposition.families import Labels, MetricGroup
from dcguard.collector.exposition.families.agent import AgentGroup
from dcguard.collector.exposition.families.backup import BackupGroup
from dcguard.collector.exposition.families.coverage import CoverageGroup
from dcguard.collector.exposition.families.filesystem import FilesystemGroup
from dcguard.collector.exposition.families.host import HostGroup
from dcguard.collector.exposition.families.risk import RiskGroup
from dcguard.collector.exposition.families.security import SecurityGroup
from dcguard.collector.exposition.families.storage import StorageGroup
from dcguard.collector.exposition.text import Family, escape_label_value, format_value, labels
from dcguard.collector.risk.config import RiskConfig
from dcguard.collector.risk.engine import RiskEngine
from dcguard.collector.store import AgentRecord, Database

__all__ = ["ExpositionSettings", "HostRenderer", "Rendered", "default_groups"]


class ExpositionSettings(Protocol):
    """What the metric groups need of the collector's config (its ServerConfig has it)."""

    @property
    def risk(self) -> RiskConfig: ...

    @property
    def down_after_intervals(self) -> int: ...

    @property
    def database(self) -> Database: ...


def default_groups(config: ExpositionSettings, risk: RiskEngine | None = None) -> list[MetricGroup]:
    """Every group, in exposition order. A new feature adds its group here.

    risk is the server's engine (sharing its filesystem history); without one
    a fresh engine is made, whose filesystem trends start empty.
    """
    engine = risk or RiskEngine(config.risk, config.down_after_intervals)
    return [
        AgentGroup(config.down_after_intervals),
        HostGroup(),
        FilesystemGroup(),
        StorageGroup(),
        BackupGroup(),
        CoverageGroup(),
        RiskGroup(engine),
        SecurityGroup(config.database),
    ]


@dataclass(frozen=True)
class Rendered:
    """One host's clock-independent fragments, and what each group rendered them from."""

    department: str
    keys: tuple[Hashable | None, ...]  # per group, MetricGroup.key
    parts: tuple[dict[str, str], ...]  # per group: family name -> samples
    fragments: dict[str, str]  # every group's parts together


class HostRenderer:
    """Renders one host's samples, family by family, through every group."""

    def __init__(self, groups: Sequence[MetricGroup]) -> None:
        self.groups = tuple(groups)
        self.families: tuple[Family, ...] = tuple(
            family for group in self.groups for family in (*group.live_families, *group.families)
        )
        names = [family.name for family in self.families]
        if len(names) != len(set(names)):
            raise ValueError("a metric family is defined twice")

    def render(self, record: AgentRecord) -> dict[str, str]:
        """The clock-independent samples of one host, one text fragment per family."""
        return self.render_host(record).fragments

    def render_all(self, records: Iterable[AgentRecord]) -> dict[str, Rendered]:
        """Render every host (at start), letting groups read what they need in bulk.

        A group with a prefetched() context (security: one query for every
        host's counts instead of one per host) is rendered inside it.
        """
        with ExitStack() as stack:
            for group in self.groups:
                bulk: Callable[[], AbstractContextManager[None]] | None = getattr(
                    group, "prefetched", None
                )
                if bulk is not None:
                    stack.enter_context(bulk())
            return {r.host: self.render_host(r) for r in records}

    def render_host(self, record: AgentRecord, previous: Rendered | None = None) -> Rendered:
        """Like render(), reusing previous's part of every group whose key is unchanged."""
        if previous is not None and previous.department != record.department:
            previous = None  # every label set changes
        adder = _Adder(record)
        keys: list[Hashable | None] = []
        parts: list[dict[str, str]] = []
        fragments: dict[str, str] = {}
        for index, group in enumerate(self.groups):
            key = group.key(record)
            if key is not None and previous is not None and previous.keys[index] == key:
                part = previous.parts[index]
            else:
                adder.out = {}
                group.render(record, adder.add)
                part = {name: "".join(lines) for name, lines in adder.out.items()}
            keys.append(key)
            parts.append(part)
            fragments.update(part)
        return Rendered(record.department, tuple(keys), tuple(parts), fragments)

    def render_live(self, record: AgentRecord, now: float) -> dict[str, str]:
        """The clock-dependent samples of one host."""
        adder = _Adder(record)
        for group in self.groups:
            group.render_live(record, now, adder.add)
        return {name: "".join(lines) for name, lines in adder.out.items()}


class _Adder:
    """An add() that collects samples labelled with the host and department in out."""

    def __init__(self, record: AgentRecord) -> None:
        # '{host="…",department="…"': every label set of the host starts so.
        self._prefix = labels((("host", record.host), ("department", record.department)))[:-1]
        # Many families share a label set (every filesystem family, say): it
        # is rendered once per render. Nothing is kept between renders: at
        # 10,000 hosts the kept sets cost about 200 MiB, and rendering one
        # from the prefix costs about as much as looking it up did.
        self._label_sets: dict[tuple[tuple[str, str], ...], str] = {}
        self.out: dict[str, list[str]] = {}

    def add(self, name: str, extra: Labels, value: float) -> None:
        key = extra if type(extra) is tuple else tuple(extra)
        text = self._label_sets.get(key)
        if text is None:
            if key:
                text = (
                    self._prefix
                    + "".join([f',{k}="{escape_label_value(v)}"' for k, v in key])
                    + "}"
                )
            else:
                text = self._prefix + "}"
            self._label_sets[key] = text
        line = (
            f"{name}{text} {value}\n"
            if type(value) is int
            else f"{name}{text} {format_value(value)}\n"
        )
        lines = self.out.get(name)
        if lines is None:
            self.out[name] = [line]
        else:
            lines.append(line)
