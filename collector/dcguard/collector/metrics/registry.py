"""The metric groups a collector serves, and rendering a host through all of them."""

from __future__ import annotations

from collections.abc import Sequence

from dcguard.collector.config import ServerConfig
from dcguard.collector.exposition import Family, labels, sample
from dcguard.collector.metrics import AddSample, Labels, MetricGroup
from dcguard.collector.metrics.agent import AgentGroup
from dcguard.collector.metrics.backup import BackupGroup
from dcguard.collector.metrics.filesystem import FilesystemGroup
from dcguard.collector.metrics.host import HostGroup
from dcguard.collector.metrics.risk import RiskGroup
from dcguard.collector.metrics.storage import StorageGroup
from dcguard.collector.risk.engine import RiskEngine
from dcguard.collector.security.metrics import SecurityGroup
from dcguard.collector.store import AgentRecord

__all__ = ["HostRenderer", "default_groups"]


def default_groups(config: ServerConfig, risk: RiskEngine | None = None) -> list[MetricGroup]:
    """Every group, in exposition order. A new feature adds its group here.

    risk is the server's engine (sharing its filesystem history); without one
    a fresh engine is made, whose filesystem trends start empty.
    """
    engine = risk or RiskEngine(config.risk, config.down_after_intervals)
    return [AgentGroup(config.down_after_intervals), HostGroup(), FilesystemGroup(),
            StorageGroup(), BackupGroup(), RiskGroup(engine), SecurityGroup(config.database)]


class HostRenderer:
    """Renders one host's samples, family by family, through every group."""

    def __init__(self, groups: Sequence[MetricGroup]) -> None:
        self.groups = tuple(groups)
        self.families: tuple[Family, ...] = tuple(
            family for group in self.groups for family in (*group.live_families,
                                                            *group.families))
        names = [family.name for family in self.families]
        if len(names) != len(set(names)):
            raise ValueError("a metric family is defined twice")

    def render(self, record: AgentRecord) -> dict[str, str]:
        """The clock-independent samples of one host, one text fragment per family."""
        out: dict[str, list[str]] = {}
        add = _adder(record, out)
        for group in self.groups:
            group.render(record, add)
        return {name: "".join(lines) for name, lines in out.items()}

    def render_live(self, record: AgentRecord, now: float) -> dict[str, str]:
        """The clock-dependent samples of one host."""
        out: dict[str, list[str]] = {}
        add = _adder(record, out)
        for group in self.groups:
            group.render_live(record, now, add)
        return {name: "".join(lines) for name, lines in out.items()}


def _adder(record: AgentRecord, out: dict[str, list[str]]) -> AddSample:
    """An add() that appends samples labelled with the host and department to out."""
    base = (("host", record.host), ("department", record.department))
    # Many families share a label set (every filesystem family, say): render it once.
    rendered: dict[tuple[tuple[str, str], ...], str] = {}

    def add(name: str, extra: Labels, value: float) -> None:
        key = tuple(extra)
        text = rendered.get(key)
        if text is None:
            text = rendered[key] = labels((*base, *key))
        out.setdefault(name, []).append(sample(name, text, value))

    return add
