"""The agent's config file: [agent], [collector], [sources] and each source's own table."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from dcguard.agent.delivery.config import SpoolConfig, parse_spool
from dcguard.agent.delivery.endpoint import CollectorConfig, parse_collector
from dcguard.agent.sources import Source, SourceContext, load_all
from dcguard.common.config import Table, load_toml
from dcguard.common.console import read_log_level
from dcguard.common.i18n import tr
from dcguard.common.names import check_name

__all__ = ["DEFAULT_CONFIG", "AgentConfig", "CollectorConfig", "load_config"]

DEFAULT_CONFIG = Path("/etc/dcguard/agent.toml")


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    host: str
    department: str
    interval: float
    state_dir: Path
    log_level: str
    collector: CollectorConfig
    sources: tuple[Source, ...]
    spool: SpoolConfig = field(default_factory=SpoolConfig)

    def close_sources(self) -> None:
        for source in self.sources:
            source.close()


def _name(table: Table, key: str, default: str | None = None) -> str:
    value = table.string(key) if default is None else table.string(key, default)
    problem = check_name(value)
    if problem:
        raise table.error(key, tr("{value} {problem}", value=repr(value), problem=problem))
    return value


def _absolute(table: Table, key: str, default: str) -> Path:
    value = table.path(key, default)
    if not value.is_absolute():
        raise table.error(key, tr("must be an absolute path, got {value}", value=repr(str(value))))
    return value


def load_config(path: Path) -> AgentConfig:
    """Read and validate an agent config; any problem raises a one-line ConfigError."""
    root = Table(load_toml(path), source=path)
    agent = root.table("agent")
    host = _name(agent, "host", socket.gethostname().split(".")[0] or "localhost")
    department = _name(agent, "department")
    interval = agent.duration("interval", "15s", minimum=0.05)
    state_dir = agent.path("state_dir", "/var/lib/dcguard-agent")
    proc_root = _absolute(agent, "proc_root", "/proc")
    sys_root = _absolute(agent, "sys_root", "/sys")
    log_level = read_log_level(agent)
    agent.finish()

    collector = parse_collector(root.table("collector"))
    spool = parse_spool(root.table("spool"))
    context = SourceContext(
        host=host, interval=interval, state_dir=state_dir, proc_root=proc_root, sys_root=sys_root
    )
    sources = _sources(root, context)
    root.finish()
    return AgentConfig(
        path, host, department, interval, state_dir, log_level, collector, tuple(sources), spool
    )


def _sources(root: Table, context: SourceContext) -> list[Source]:
    """Build every registered source (validating its table) and keep the enabled ones."""
    registry = load_all()
    switches = root.table("sources")
    disable_defaults = switches.boolean("disable_defaults", False)
    enabled: list[Source] = []
    for name, spec in sorted(registry.items()):
        source = spec.factory(root, context)
        if switches.boolean(name, spec.default_enabled and not disable_defaults):
            enabled.append(source)
    switches.finish()
    if not enabled:
        raise switches.error(
            "disable_defaults", tr("every source is disabled; enable at least one")
        )
    return enabled
