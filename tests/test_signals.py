"""SIGTERM and SIGINT stop the agent and the collector even when they arrive back to back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import signal, threading
    from dcguard.common.signals import stop_on_signals

    stop = threading.Event()
    stop_on_signals(stop)
    {trigger}
    print("stopped" if stop.wait(5) else "not stopped", flush=True)
""")

# Event.wait() holds the Event's lock at moments; a second signal landing
# then ran a handler calling set() on the same thread, which waited for
# that lock forever (a collector hung so on `stop` in CI). Holding the lock
# while a signal is delivered makes that moment certain.
WHILE_HOLDING_THE_LOCK = """
with stop._cond:
    signal.raise_signal(signal.SIGTERM)
"""


@pytest.mark.parametrize(
    "trigger",
    [
        WHILE_HOLDING_THE_LOCK,
        "signal.raise_signal(signal.SIGINT)",
        "import os; [os.kill(os.getpid(), signal.SIGTERM) for _ in range(100)]",
    ],
    ids=["while-the-event-is-locked", "sigint", "a-burst"],
)
def test_a_stop_signal_sets_the_event_and_never_deadlocks(trigger):
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD.format(trigger=trigger)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        pytest.fail("the process hung on a stop signal")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_the_collector_logs_that_it_has_stopped(tmp_path, sig):
    """Its log must not end at `listening …`: the last line says it stopped, and exit 0."""
    import signal as signals

    from tests.support import Collector

    collector = Collector(tmp_path / "collector")
    collector.start()
    try:
        assert collector.stop(getattr(signals, sig)) == 0
    finally:
        collector.stop()
    last = collector.log().strip().splitlines()[-1]
    assert "dcguard-collector stopped" in last, collector.log()[-2000:]
