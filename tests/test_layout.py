"""The tree's shape: each stage is a folder, named in the README's layout table."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stage", ["sources", "cycle", "delivery", "trust", "logs", "cli"])
def test_the_agent_stages_are_folders_named_in_the_readme(stage: str) -> None:
    assert (ROOT / "agent/dcguard/agent" / stage / "__init__.py").is_file()
    assert f"`agent/dcguard/agent/{stage}/`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "stage",
    ["receive", "ingest", "settle", "risk", "exposition", "trust", "security", "store", "cli"],
)
def test_the_collector_stages_are_folders_named_in_the_readme(stage: str) -> None:
    assert (ROOT / "collector/dcguard/collector" / stage / "__init__.py").is_file()
    assert f"`collector/dcguard/collector/{stage}/`" in (ROOT / "README.md").read_text()
