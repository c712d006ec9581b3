"""Helpers for the security-source tests: build a source from a real config table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcguard.agent.sources import Source, SourceContext, load_all
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb


def make_source(
    name: str, state_dir: Path, settings: dict[str, Any] | None = None, **keys: Any
) -> Source:
    """The registered source `name`, configured by [security] settings and [security.name] keys."""
    security: dict[str, Any] = dict(settings or {})
    security[name] = keys
    root = Table({"security": security}, source="test")
    context = SourceContext(host="test", interval=1.0, state_dir=state_dir)
    return load_all()[name].factory(root, context)


def collect(source: Source, commit: bool = True) -> pb.Report:
    """One report from the source; committed (as if durably stored) unless told otherwise."""
    report = pb.Report()
    source.collect(report)
    if commit:
        source.commit()
    return report
