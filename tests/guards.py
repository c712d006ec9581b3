"""Two ways a run can pass while something is wrong, turned into a failed session.

- A process a test started outlives it (tests/orphans.py finds them): listed
  with the test that started it, killed, and the session fails.
- A test skipped because a tool is missing that tests/run.sh installs. Under
  tests/run.sh (DCGUARD_STRICT_SKIPS=1) or CI (CI=true) every skip fails the
  session unless its reason says the thing is "not installable here"; so a
  skip cannot hide a missing install step, whatever words its reason uses.

conftest.py imports these hooks; `pytest -p tests.guards` loads them as a
plugin (as tests/test_guards.py does).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.orphans import Tracker

__all__ = [
    "NOT_INSTALLABLE",
    "note_started_processes",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
]

# The words a skip reason must hold to be allowed under tests/run.sh and CI.
NOT_INSTALLABLE = "not installable here"

_tracker = Tracker()
_skips: list[tuple[str, str]] = []


def strict_skips() -> bool:
    return os.environ.get("DCGUARD_STRICT_SKIPS") == "1" or os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def note_started_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Torn down after the test's own fixtures: what is new now was started by this test."""
    before = _tracker.current()
    yield
    _tracker.note(before, request.node.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skips.append((report.nodeid, reason.removeprefix("Skipped: ")))


def _problems() -> list[str]:
    lines: list[str] = []
    leaks = _tracker.survivors()
    if leaks:
        lines.append(f"{len(leaks)} process(es) started by the tests outlived them (now killed):")
        lines += [f"  pid {leak.pid} from {leak.test}: {leak.command}" for leak in leaks]
    if strict_skips():
        bad = [(node, reason) for node, reason in _skips if NOT_INSTALLABLE not in reason]
        if bad:
            lines.append(
                f"{len(bad)} test(s) skipped although tests/run.sh should have "
                f"installed what they need (a skip is allowed only when its reason "
                f"says {NOT_INSTALLABLE!r}):"
            )
            lines += [f"  {node}: {reason}" for node, reason in bad]
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session for leaked processes (killed here) or forbidden skips."""
    lines = _problems()
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line("\n".join(lines), red=True)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
