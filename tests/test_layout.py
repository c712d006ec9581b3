"""The tree's shape: what the README's layout table and the packaging promise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
ROOTS = {"agent/dcguard": "dcguard", "collector/dcguard": "dcguard", "proto/dcguard": "dcguard"}


def _packages_on_disk() -> set[str]:
    found = {"dcguard.v1"}
    for folder in ("agent/dcguard", "collector/dcguard"):
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join(("dcguard", *relative.parts)))
    return found


def test_every_package_folder_is_packaged() -> None:
    """A subpackage missing from pyproject's list installs without its modules (setuptools
    maps each package to one directory), so an installed agent fails on import."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    assert listed == _packages_on_disk()


@pytest.mark.parametrize("stage", ["sources", "cycle", "delivery", "trust", "logs", "cli"])
def test_the_agent_stages_are_folders_named_in_the_readme(stage: str) -> None:
    assert (ROOT / "agent/dcguard/agent" / stage / "__init__.py").is_file()
    assert f"`agent/dcguard/agent/{stage}/`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("stage", ["receive", "ingest", "settle", "risk", "exposition", "trust",
                                   "security", "cli"])
def test_the_collector_stages_are_folders_named_in_the_readme(stage: str) -> None:
    assert (ROOT / "collector/dcguard/collector" / stage / "__init__.py").is_file()
    assert f"`collector/dcguard/collector/{stage}/`" in (ROOT / "README.md").read_text()
