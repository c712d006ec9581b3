"""The configuration reference says the code's defaults, for every key the code reads.

A default written in the docs as a TOML literal (`"15s"`, `1024`, `[]`) is
given to the real parser as if an operator had written it: the result must
equal what the parser makes of an empty table. And every key the parser
reads must appear in the reference. So the docs cannot drift from the code:
the README's max_events_per_report once said 1000 while the code used 10000.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources import SourceContext, load_all
from dcguard.agent.sources.filesystem import DEFAULT_EXCLUDE_FSTYPES, DEFAULT_EXCLUDE_MOUNTPOINTS
from dcguard.agent.sources.storage.config import parse_storage
from dcguard.agent.sources.storage.coverage import parse_coverage
from dcguard.collector import config as collector_config
from dcguard.collector.trust.config import parse_limits
from dcguard.common.config import Table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11, the agent on 3.9 too
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
STORAGE_DOC = ROOT / "docs/storage-and-backups.md"
SECURITY_DOC = ROOT / "docs/security.md"
CODE = re.compile(r"`([^`]*)`")


class Recording(Table):
    """A Table that keeps its sub-tables, so the keys a parser read can be listed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.children: dict[str, Recording] = {}

    def table(self, key: str) -> Table:
        plain = super().table(key)
        child = Recording(plain._data, plain._path, plain._source)
        self.children[key] = child
        return child

    def keys_read(self) -> set[str]:
        return set(self._seen)


def rows(doc: Path) -> list[list[str]]:
    """The cells of every markdown table row of a document (header rows included)."""
    found = []
    for line in doc.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            found.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return found


def documented(doc: Path, prefix: str, key_column: int = 0) -> dict[str, Any]:
    """{key: default as TOML value} of the rows naming `prefix``key` in key_column.

    The default is the first code span of the next column; a row naming several
    keys (`a`, `b`) gives as many defaults (`1`, `2`). Defaults that are not TOML
    literals ("required", prose) are left out.
    """
    defaults: dict[str, Any] = {}
    for cells in rows(doc):
        if len(cells) < key_column + 2:
            continue
        keys = [
            k
            for k in CODE.findall(cells[key_column])
            if re.fullmatch(re.escape(prefix) + r"[a-z_0-9]+", k)
        ]
        values = CODE.findall(cells[key_column + 1])[: len(keys)]
        for key, literal in zip(keys, values):
            try:
                defaults[key[len(prefix) :]] = tomllib.loads(f"v = {literal}")["v"]
            except tomllib.TOMLDecodeError:
                continue
    return defaults


def documented_unset(doc: Path, prefix: str) -> set[str]:
    """Keys whose documented default is "unset" (the setting falls back to something else)."""
    return {
        key[len(prefix) :]
        for cells in rows(doc)
        if len(cells) >= 2 and cells[1].startswith("unset")
        for key in CODE.findall(cells[0])
        if re.fullmatch(re.escape(prefix) + r"[a-z_0-9]+", key)
    }


def all_keys(doc: Path, prefix: str) -> set[str]:
    """Every `prefix``key` named in the first or second cell of a table row."""
    names = set()
    for cells in rows(doc):
        for cell in cells[:2]:
            for name in CODE.findall(cell):
                if re.fullmatch(re.escape(prefix) + r"[a-z_0-9]+", name):
                    names.add(name[len(prefix) :])
    return names


def storage_keys() -> set[str]:
    root = Recording({})
    parse_storage(root, SourceContext("h", 15, Path("/tmp")))
    return root.children["storage"].keys_read()


@pytest.mark.parametrize(("doc", "prefix"), [(README, "storage."), (STORAGE_DOC, "")])
def test_storage_defaults_are_the_codes(doc: Path, prefix: str) -> None:
    defaults = documented(doc, prefix)
    assert storage_keys() <= set(defaults), "keys without a documented default"
    baseline = parse_storage(Table({}), SourceContext("h", 15, Path("/tmp")))
    for key, value in defaults.items():
        assert (
            parse_storage(Table({"storage": {key: value}}), SourceContext("h", 15, Path("/tmp")))
            == baseline
        ), key


def test_coverage_defaults_are_the_codes() -> None:
    context = SourceContext("h", 15, Path("/tmp"))
    root = Recording({})
    parse_coverage(root, context, "/proc/self/mounts")
    defaults = documented(README, "coverage.")
    assert root.children["coverage"].keys_read() <= set(defaults), "keys without a default"
    baseline = parse_coverage(Table({}), context, "/proc/self/mounts")
    for key, value in defaults.items():
        configured = parse_coverage(Table({"coverage": {key: value}}), context, "/proc/self/mounts")
        assert configured == baseline, key


def test_limits_defaults_are_the_codes() -> None:
    table = Table({})
    parse_limits(table)
    defaults = documented(SECURITY_DOC, "", key_column=1)
    for key in table._seen:  # the keys parse_limits read
        assert key in defaults, f"[limits] {key} has no documented default in {SECURITY_DOC}"
        assert parse_limits(Table({key: defaults[key]})) == parse_limits(Table({})), key
    readme = README.read_text()
    for key in table._seen:  # the keys parse_limits read
        assert re.search(rf"`{key}`\s+\(`{re.escape(tomllib_dump(defaults[key]))}`", readme), key


def tomllib_dump(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_collector_server_defaults_are_the_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    roots: list[Recording] = []

    def recording(*args: Any, **kwargs: Any) -> Recording:
        roots.append(Recording(*args, **kwargs))
        return roots[-1]

    monkeypatch.setattr(collector_config, "Table", recording)
    path = tmp_path / "collector.toml"
    path.write_text("[server]\n")
    baseline = collector_config.load_config(path)
    read = roots[-1].children["server"].keys_read()
    defaults = documented(README, "server.")
    assert read <= set(defaults) | documented_unset(README, "server."), (
        "[server] keys without a documented default"
    )
    for key, value in defaults.items():
        literal = tomllib_dump(value).lower() if isinstance(value, bool) else tomllib_dump(value)
        path.write_text(f"[server]\n{key} = {literal}\n")
        assert collector_config.load_config(path) == baseline, key


def test_agent_sources_and_filesystem_defaults_are_the_codes() -> None:
    readme = README.read_text()
    (row,) = [cells for cells in rows(README) if cells[0] == "`sources.<name>`"]
    named = [n for n in CODE.findall(row[2]) if n not in ("true", "false")]
    registry = load_all()
    assert sorted(named) == sorted(registry)
    assert all(spec.default_enabled for spec in registry.values()), "the row says all on"
    (fstypes,) = [cells for cells in rows(README) if cells[0] == "`filesystem.exclude_fstypes`"]
    assert CODE.findall(fstypes[1])[1:-1] == sorted(DEFAULT_EXCLUDE_FSTYPES)
    (mountpoints,) = [
        cells for cells in rows(README) if cells[0] == "`filesystem.exclude_mountpoints`"
    ]
    assert CODE.findall(mountpoints[1])[0].replace("\\|", "|") == DEFAULT_EXCLUDE_MOUNTPOINTS
    assert "docs/storage-and-backups.md" in readme


def test_the_commented_example_config_shows_the_default_limits() -> None:
    """deploy/collector.toml is copied by operators: its [limits] must not lower a bound."""
    example = tomllib.loads((ROOT / "deploy/collector.toml").read_text())
    assert parse_limits(Table(example["limits"])) == parse_limits(Table({}))


def test_ransomware_defaults_are_the_codes() -> None:
    """Every [security.ransomware] key is in the README with the parser's own default."""
    from dcguard.agent.sources.ransomware import parse_watch

    recording = Recording({})
    baseline = parse_watch(recording)
    defaults = documented(README, "security.ransomware.")
    assert recording.keys_read() <= set(defaults), "keys without a documented default"
    for key, value in defaults.items():
        assert parse_watch(Table({key: value})) == baseline, key
