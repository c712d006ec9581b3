"""Agent liveness, identity and delivery counters."""

from __future__ import annotations

from collections.abc import Hashable

from dcguard.collector.exposition.families import AddSample
from dcguard.collector.exposition.text import Family
from dcguard.collector.liveness import is_up
from dcguard.collector.store import AgentRecord

__all__ = ["AgentGroup"]

_G, _C = "gauge", "counter"


class AgentGroup:
    live_families: tuple[Family, ...] = (
        Family(
            "dcguard_agent_up", _G, "1 if a report arrived within the staleness window, else 0."
        ),
    )
    families: tuple[Family, ...] = (
        Family("dcguard_agent_last_seen_timestamp_seconds", _G, "Time the last report arrived."),
        Family("dcguard_agent_info", _G, "Agent version, OS and kernel; always 1."),
        Family("dcguard_agent_reports_stored_total", _C, "Distinct reports stored for this host."),
        Family(
            "dcguard_agent_reports_lost_total",
            _C,
            "Reports that never arrived: gaps in the host's sequence numbers.",
        ),
        Family(
            "dcguard_agent_spool_dropped_reports_total",
            _C,
            "Reports the agent dropped because its spool bound was reached.",
        ),
        Family(
            "dcguard_agent_report_timestamp_seconds",
            _G,
            "Time the newest stored report was collected on the host.",
        ),
        Family("dcguard_agent_interval_seconds", _G, "The agent's report interval."),
        Family(
            "dcguard_agent_clock_skew_seconds",
            _G,
            "The newest report's time as the host stamped it minus its arrival: positive "
            "when the host's clock is ahead (negative also while a backlog drains).",
        ),
        Family(
            "dcguard_agent_report_omitted_entries",
            _G,
            "Entries the agent left out of the newest report to stay within the "
            "collector's default limits, by list (kind).",
        ),
        Family(
            "dcguard_agent_source_success",
            _G,
            "1 if the source succeeded in the newest report, else 0.",
        ),
        Family(
            "dcguard_agent_source_duration_seconds",
            _G,
            "How long the source took in the newest report's cycle, on the host.",
        ),
    )

    def __init__(self, down_after_intervals: int) -> None:
        self._down_after = down_after_intervals

    def key(self, record: AgentRecord) -> Hashable | None:
        return None  # changes with every report

    def render(self, record: AgentRecord, add: AddSample) -> None:
        add("dcguard_agent_last_seen_timestamp_seconds", (), record.last_seen)
        add(
            "dcguard_agent_info",
            (("agent_version", record.agent_version), ("os", record.os), ("kernel", record.kernel)),
            1,
        )
        add("dcguard_agent_reports_stored_total", (), record.reports_stored)
        add("dcguard_agent_reports_lost_total", (), record.reports_lost)
        add("dcguard_agent_interval_seconds", (), record.interval_seconds)
        add("dcguard_agent_clock_skew_seconds", (), record.clock_skew_seconds)
        report = record.latest
        if report is None:
            return
        add("dcguard_agent_spool_dropped_reports_total", (), report.spool_dropped_total)
        add(
            "dcguard_agent_report_timestamp_seconds",
            (),
            report.collected_at.seconds + report.collected_at.nanos / 1e9,
        )
        for kind, omitted in sorted(report.omitted_entries.items()):
            add("dcguard_agent_report_omitted_entries", (("kind", kind),), omitted)
        for status in report.sources:
            add("dcguard_agent_source_success", (("source", status.name),), status.success)
            add(
                "dcguard_agent_source_duration_seconds",
                (("source", status.name),),
                status.duration_seconds,
            )

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        add("dcguard_agent_up", (), is_up(record, now, self._down_after))
