"""The OS name on dcguard_agent_info: read from os-release by the agent itself.

platform.freedesktop_os_release() is Python 3.10+, so on the old servers the
3.9 support exists for the os label said only "Linux".
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from dcguard.agent.cycle.os_release import os_name, parse_os_release
from tests.guards import NOT_INSTALLABLE

DEBIAN_12 = Path(__file__).parent / "fixtures" / "os-release-debian-12"


def test_pretty_name_of_a_real_file(tmp_path: Path) -> None:
    assert os_name((DEBIAN_12,)) == "Debian GNU/Linux 12 (bookworm)"


def test_etc_first_then_usr_lib(tmp_path: Path) -> None:
    etc, usr_lib = tmp_path / "etc-os-release", tmp_path / "usr-lib-os-release"
    shutil.copy(DEBIAN_12, usr_lib)
    assert os_name((etc, usr_lib)) == "Debian GNU/Linux 12 (bookworm)"  # no /etc file
    etc.write_text('NAME="Edited Linux"\n')  # NAME when there is no PRETTY_NAME
    assert os_name((etc, usr_lib)) == "Edited Linux"


def test_neither_file_nor_a_name_falls_back_to_the_kernel_name(tmp_path: Path) -> None:
    assert os_name((tmp_path / "none", tmp_path / "none2")) == platform.system()
    empty = tmp_path / "os-release"
    empty.write_text("ID=debian\n")
    assert os_name((empty,)) == platform.system()
    (tmp_path / "dir").mkdir()
    assert os_name((tmp_path / "dir",)) == platform.system()


@pytest.mark.skipif(
    not hasattr(platform, "freedesktop_os_release"),
    reason=f"{NOT_INSTALLABLE}: compares with the reader of Python 3.10+, "
    "and this interpreter is older",
)
@pytest.mark.parametrize(
    "text",
    [
        DEBIAN_12.read_text(),
        "# comment\n\nPRETTY_NAME='single quoted'\nNAME=plain\n",
        'PRETTY_NAME="with \\"escaped\\" quotes and \\$dollar"\n',
        'garbage line\n=nokey\nlower=case\nNAME="unterminated\n',
    ],
)
def test_same_fields_as_pythons_own_reader(tmp_path: Path, text: str) -> None:
    path = tmp_path / "os-release"
    path.write_text(text)
    ours = parse_os_release(text)
    theirs = dict(platform._parse_os_release(text.splitlines()))  # type: ignore[attr-defined]
    for key in ("PRETTY_NAME", "NAME"):
        assert ours.get(key, "Linux") == theirs[key], key  # "Linux": the stdlib's default


PYTHON39 = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")) or [
    Path(p) for p in (shutil.which("python3.9"),) if p
]


@pytest.mark.skipif(
    not PYTHON39,
    reason=f"{NOT_INSTALLABLE}: no Python 3.9 on this machine "
    "(pyenv or python3.9), and Debian 12 packages none",
)
def test_python_3_9_reads_the_os_name_too() -> None:
    """What the agent on an old server puts in the os label (the module needs nothing else)."""
    agent_dir = Path(__file__).resolve().parent.parent / "agent"
    code = (
        f"import sys; sys.path.insert(0, {str(agent_dir)!r}); "
        "from dcguard.agent.cycle.os_release import os_name; print(os_name())"
    )
    result = subprocess.run(
        [str(PYTHON39[0]), "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os_name() != platform.system()
