"""The report cycle: each source isolated, timed, and its failures logged once per change."""

from __future__ import annotations

import logging
import time

import pytest

from dcguard.agent.cycle.report_builder import SourceErrors, build_report
from dcguard.v1 import collector_pb2 as pb
from tests.support import Collector, metric, wait_for


class Flaky:
    name = "flaky"

    def __init__(self) -> None:
        self.failing = True

    def collect(self, report: pb.Report) -> None:
        time.sleep(0.02)
        if self.failing:
            raise OSError("smartctl: not installed")
        report.host.load1 = 1.0

    def commit(self) -> None: ...

    def close(self) -> None: ...


def test_a_broken_source_is_logged_when_it_breaks_and_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, errors = Flaky(), SourceErrors()
    caplog.set_level(logging.INFO, logger="dcguard.agent.cycle.report_builder")
    for sequence in range(1, 4):
        report = build_report((source,), sequence, errors=errors)
        assert not report.sources[0].success
        assert report.sources[0].duration_seconds >= 0.02
    source.failing = False
    assert build_report((source,), 4, errors=errors).sources[0].success
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "source flaky failed: OSError: smartctl: not installed",
        "source flaky works again",
    ]


def test_two_agents_in_one_process_keep_their_own_error_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The memory was a module global: a second loop (tests, a one-shot collect beside
    `run`) silenced the first one's warnings."""
    caplog.set_level(logging.WARNING, logger="dcguard.agent.cycle.report_builder")
    build_report((Flaky(),), 1, errors=SourceErrors())
    build_report((Flaky(),), 1, errors=SourceErrors())
    assert len(caplog.records) == 2


def test_each_source_duration_is_on_the_collectors_metrics(
    collector: Collector, make_agent
) -> None:  # type: ignore[no-untyped-def]
    agent = make_agent([collector.grpc_address])
    agent.start()

    def timed() -> float | None:
        return metric(
            collector.metrics(),
            "dcguard_agent_source_duration_seconds",
            host="testhost",
            source="host",
        )

    duration = wait_for(timed, timeout=30, message="the host source's duration")
    assert 0 < duration < 5
