"""What `pip install .` installs: every package of the source tree, none left out."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tests run on Debian 12's 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_in_the_tree_is_in_the_distribution():
    """setuptools installs only the listed packages: a new subpackage left out of the list
    works in the editable checkout and is missing from every real install."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk: set[str] = set()
    for top, directory in setuptools["package-dir"].items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            on_disk.add(".".join((top, *parts)))
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    # A listed package whose folder no longer exists stops `pip install` itself.
    dirs = setuptools["package-dir"]
    gone = set()
    for package in listed:
        top = max((t for t in dirs if package == t or package.startswith(t + ".")), key=len)
        rest = package[len(top) :].lstrip(".").split(".") if package != top else []
        if not (ROOT / dirs[top]).joinpath(*rest).is_dir():
            gone.add(package)
    assert gone == set(), "remove these from [tool.setuptools] packages"
