"""The agent's cycle: every interval, ask each source for its part and hand the report on.

Each source is isolated: an exception or a slow call in one is recorded in
the report's SourceStatus and never stops the others or the loop. Sources
whose calls can hang own their deadlines (the filesystem source does);
slow tools run on their own schedule, never inside this loop.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from typing import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from dcguard.agent.config import AgentConfig
from dcguard.agent.cycle.os_release import os_name
from dcguard.agent.cycle.report_cap import cap_report
from dcguard.agent.sources import BackgroundSource, Source
from dcguard.common.version import VERSION
from dcguard.v1 import collector_pb2 as pb

__all__ = ["SourceErrors", "Ticker", "agent_info", "build_report", "prime"]

log = logging.getLogger(__name__)


def agent_info(config: AgentConfig, instance_id: str) -> pb.AgentInfo:
    """Who this agent is, as sent with every batch."""
    return pb.AgentInfo(
        host=config.host,
        department=config.department,
        agent_version=VERSION,
        os=os_name(),
        kernel=platform.release(),
        interval_seconds=config.interval,
        instance_id=instance_id,
    )


def prime(sources: tuple[Source, ...], timeout: float, stop: threading.Event | None = None) -> None:
    """Start the sources that read in background threads (SMART, journal, backups); wait
    at most timeout seconds in all (less if stop is set) for their first rounds.

    Until its first round a background source reports "not known yet" as a
    failure; priming makes the first report (of `run`, or the one `collect`
    prints) carry what the tools really said.
    """
    deadline = time.monotonic() + timeout
    waits = []
    for source in sources:
        if not isinstance(source, BackgroundSource):
            continue
        try:
            started = source.start()
        except Exception as exc:  # noqa: BLE001 - the report's collect records the failure
            log.debug("source %s: cannot start: %s", source.name, exc)
            continue
        if started:  # False: this source reads inline, there is no round to wait for
            waits.append(source.wait_rounds)
    stop = stop or threading.Event()
    for wait in waits:
        # In short steps, so a stop signal during start-up is not held up.
        while not stop.is_set() and time.monotonic() < deadline:
            if wait(1, min(0.2, max(0.0, deadline - time.monotonic()))):
                break


class SourceErrors:
    """What each source last failed with, so a source that stays broken (smartctl not
    installed) is logged when it breaks and when it recovers, not every cycle."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def failed(self, name: str, error: str) -> None:
        if self._last.get(name) != error:
            log.warning("source %s failed: %s", name, error)
        self._last[name] = error

    def succeeded(self, name: str) -> None:
        if self._last.pop(name, None) is not None:
            log.info("source %s works again", name)


def build_report(
    sources: tuple[Source, ...],
    sequence: int,
    wall_clock: Callable[[], float] = time.time,
    errors: SourceErrors | None = None,
) -> pb.Report:
    """Run every source once and return the report they filled.

    errors is the long-running loop's memory of failures; a one-shot report
    logs every failure it meets.
    """
    errors = errors or SourceErrors()
    report = pb.Report(sequence=sequence)
    stamp = Timestamp()
    stamp.FromNanoseconds(int(wall_clock() * 1e9))
    report.collected_at.CopyFrom(stamp)
    for source in sources:
        part = pb.Report()
        started = time.monotonic()
        status = report.sources.add(name=source.name)
        try:
            source.collect(part)
        except Exception as exc:  # noqa: BLE001 - one failing source must not stop the cycle
            status.success = False
            status.error = f"{type(exc).__name__}: {exc}"[:500]
            errors.failed(source.name, status.error)
        else:
            status.success = True
            report.MergeFrom(part)
            errors.succeeded(source.name)
        status.duration_seconds = time.monotonic() - started
    cap_report(report)
    return report


class Ticker:
    """Fires every interval on a fixed schedule; missed ticks are skipped, not bunched."""

    def __init__(
        self, interval: float, stop: threading.Event, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._stop = stop
        self._clock = clock
        self._next = clock()

    def wait(self) -> bool:
        """Sleep until the next tick; False once stop is set."""
        now = self._clock()
        if now > self._next + self._interval:
            skipped = int((now - self._next) // self._interval)
            log.warning("cycle overran: skipping %d interval(s)", skipped)
            self._next += skipped * self._interval
        delay = max(0.0, self._next - now)
        self._next += self._interval
        return not self._stop.wait(delay)
