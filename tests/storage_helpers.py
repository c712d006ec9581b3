"""Shared helpers for the storage and backup source tests: building sources from config dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcguard.agent.sources import Source, SourceContext, load_all
from dcguard.agent.sources.backup import BackupSource
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

FIXTURES = Path(__file__).parent / "fixtures"


def make_source(name: str, config: dict[str, Any], state_dir: Path) -> Any:
    """Build a registered source exactly as the agent does, from a config dict."""
    spec = load_all()[name]
    return spec.factory(Table(config, source="config test.toml"),
                        SourceContext(host="testhost", interval=15.0, state_dir=state_dir))


def collect(source: Source) -> pb.Report:
    report = pb.Report()
    source.collect(report)
    return report


def backup_source(tmp_path: Path, *jobs: dict[str, Any]) -> BackupSource:
    jobs_with_defaults = [{"rpo": "26h", **job} for job in jobs]
    source = make_source("backup", {"backup": jobs_with_defaults}, tmp_path / "state")
    assert isinstance(source, BackupSource)
    return source
