"""An agent whose wall clock is wrong keeps reporting: its reports are stored,
their time clamped to arrival, the skew exported per host.

The agent is a real process whose wall clock is offset and then stepped back
while it runs, the way NTP corrects a server that booted with a wrong clock
(tests/skewclock/sitecustomize.py offsets its time.time).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support import Agent, Collector, metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}
SKEWCLOCK = Path(__file__).parent / "skewclock"


def _skewed(agent: Agent, offset_file: Path, seconds: float) -> None:
    """Run the agent with its wall clock `seconds` ahead, as written in offset_file."""
    offset_file.write_text(f"{seconds}\n")
    agent.env = {"PYTHONPATH": str(SKEWCLOCK), "DCGUARD_TEST_CLOCK_OFFSET_FILE": str(offset_file)}


def _acked(agent: Agent) -> int:
    result = agent.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["acked_sequence"])


def test_an_agent_two_hours_ahead_keeps_delivering_and_its_skew_shows(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    agent = make_agent([collector.grpc_address], interval="200ms")
    offset = tmp_path / "clock-offset"
    _skewed(agent, offset, 7200)
    agent.start()

    def host(name: str) -> float | None:
        return metric(collector.metrics(), name, **HOST)

    wait_for(
        lambda: (host("dcguard_agent_reports_stored_total") or 0) >= 10,
        timeout=30,
        message="reports from the agent whose clock is 2 h ahead",
    )
    first = _acked(agent)
    wait_for(lambda: _acked(agent) >= first + 10, timeout=30, message="acked to keep rising")
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_up", **HOST) == 1
    skew = metric(samples, "dcguard_agent_clock_skew_seconds", **HOST)
    assert skew is not None and 7200 - 60 < skew < 7200 + 60
    # Stored at its arrival, not two hours in the future.
    stamped = metric(samples, "dcguard_agent_report_timestamp_seconds", **HOST)
    assert stamped is not None and stamped <= time.time() + 5
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason="invalid_report") == 0
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0

    # NTP steps the clock back two hours while the agent runs; nothing stalls or is lost.
    offset.write_text("0\n")
    wait_for(
        lambda: abs(host("dcguard_agent_clock_skew_seconds") or 1e9) < 30,
        timeout=30,
        message="the skew to fall back to zero",
    )
    before = _acked(agent)
    wait_for(
        lambda: _acked(agent) >= before + 10,
        timeout=30,
        message="delivery to go on after the correction",
    )
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_up", **HOST) == 1
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0
    status = json.loads(agent.cli("status", "--json").stdout)
    assert status["rejected_total"] == 0 and status["delivery_failing"] is None


def test_a_report_a_minute_ahead_of_a_strict_collector_is_stored(
    tmp_path: Path, make_agent
) -> None:
    """The field case: max_clock_ahead = "2s" and a clock 60 s ahead froze delivery."""
    collector = Collector(tmp_path / "collector", extra_config='[limits]\nmax_clock_ahead = "2s"\n')
    collector.start()
    try:
        agent = make_agent([collector.grpc_address], interval="200ms")
        offset = tmp_path / "clock-offset"
        _skewed(agent, offset, 0)
        agent.start()
        wait_for(
            lambda: (
                (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0)
                >= 5
            ),
            timeout=30,
            message="reports on time",
        )
        # The field case: +60 s for 3 s, then back.
        offset.write_text("60\n")
        time.sleep(3)
        wait_for(
            lambda: (
                50
                < (metric(collector.metrics(), "dcguard_agent_clock_skew_seconds", **HOST) or 0)
                < 70
            ),
            timeout=15,
            message="the skew to show while the clock is ahead",
        )
        offset.write_text("0\n")
        stored = metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0
        wait_for(
            lambda: (
                (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0)
                >= stored + 20
            ),
            timeout=30,
            message="delivery to flow on after the clock is back",
        )
        samples = collector.metrics()
        assert metric(samples, "dcguard_agent_up", **HOST) == 1
        assert abs(metric(samples, "dcguard_agent_clock_skew_seconds", **HOST) or 1e9) < 30
        assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0
        status = json.loads(agent.cli("status", "--json").stdout)
        assert status["rejected_total"] == 0
        assert (
            metric(samples, "dcguard_collector_reports_rejected_total", reason="invalid_report")
            == 0
        )
    finally:
        collector.stop()
