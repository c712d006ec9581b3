"""The guards of tests/guards.py really fail a run: leaked processes, skips for missing tools."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.orphans import descendants

ROOT = Path(__file__).resolve().parent.parent

LEAKY = textwrap.dedent("""
    import subprocess


    def test_that_leaves_a_daemon_behind():
        # Double fork: the sleep's parent exits at once, as a daemonising tool's does.
        subprocess.run(["sh", "-c", "sleep 313 & exit 0"], check=True)


    def test_that_cleans_up():
        process = subprocess.Popen(["sleep", "314"])
        process.kill()
        process.wait()
""")


def inner_pytest(test_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on one file with the guards as a plugin, as tests/run.sh's run has them."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "DCGUARD_STRICT_SKIPS")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.guards",
            "--rootdir",
            str(test_file.parent),
            str(test_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**environ, **env},
        check=False,
    )


def test_a_process_left_behind_fails_the_session_and_is_killed(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    result = inner_pytest(tmp_path / "test_leaky.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "1 process(es) started by the tests outlived them" in result.stdout
    assert "test_leaky.py::test_that_leaves_a_daemon_behind: sleep 313" in result.stdout
    assert "sleep 314" not in result.stdout

    def sleeping() -> list[int]:
        return [
            pid
            for pid in descendants(1)
            if Path(f"/proc/{pid}/cmdline").exists()
            and b"313" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]

    deadline = time.monotonic() + 10
    while sleeping() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sleeping()  # the guard killed it


SKIPPING = textwrap.dedent("""
    import pytest


    def test_needs_a_tool():
        pytest.skip("promtool missing")


    @pytest.mark.skipif(True, reason="needs python3.9: not installable here (no Debian 12 package)")
    def test_needs_what_no_package_has():
        pass


    def test_runs():
        pass
""")


@pytest.mark.parametrize(
    "env", [{"DCGUARD_STRICT_SKIPS": "1"}, {"CI": "true"}], ids=["run.sh", "ci"]
)
def test_a_skip_for_a_missing_tool_fails_under_run_sh_and_ci(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    result = inner_pytest(tmp_path / "test_skipping.py", **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 2 skipped" in result.stdout
    assert "1 test(s) skipped although tests/run.sh should have installed" in result.stdout
    assert "test_skipping.py::test_needs_a_tool: promtool missing" in result.stdout
    assert "test_needs_what_no_package_has" not in result.stdout.split("should have")[1]


def test_a_developer_running_pytest_directly_may_skip(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    result = inner_pytest(tmp_path / "test_skipping.py")
    assert result.returncode == 0, result.stdout + result.stderr
