"""The collector's own counters, on a registry of its own (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.process_collector import ProcessCollector

from dcguard.collector.errors import REJECTION_REASONS

__all__ = ["SelfMetrics"]


class SelfMetrics:
    def __init__(self) -> None:
        # *_created series double the exposition and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "dcguard_collector_reports_received",
            "Reports received in Submit calls.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "dcguard_collector_reports_rejected",
            "Reports refused, by reason; nothing of a refused request is stored.",
            ["reason"],
            registry=self.registry,
        )
        # Per host, where the caller's identity is known (authenticated, or
        # claimed in insecure mode): a host whose every report is refused
        # never appears in the per-host families, so this is where it shows.
        self.agent_rejected = Counter(
            "dcguard_agent_reports_rejected",
            "Reports of this host refused, by reason; nothing of them was stored.",
            ["host", "department", "reason"],
            registry=self.registry,
        )
        self.duplicate = Counter(
            "dcguard_collector_reports_duplicate",
            "Reports received again after they were stored; acknowledged, not applied.",
            registry=self.registry,
        )
        self.elsewhere = Counter(
            "dcguard_collector_reports_acknowledged_elsewhere",
            "Reports missing from this collector's store that their agent says a collector "
            "acknowledged: collectors with stores of their own in one agent's addresses "
            "(not supported), or a store restored from an older copy. Not counted lost.",
            registry=self.registry,
        )
        self.agents = Gauge(
            "dcguard_collector_agents", "Agents known to this collector.", registry=self.registry
        )
        self.store_up = Gauge(
            "dcguard_collector_store_up",
            "1 if the collector's last write to (or, with a shared store, read of) its "
            "database succeeded; while 0, Submit answers UNAVAILABLE and /metrics shows "
            "the last state read.",
            registry=self.registry,
        )
        self.store_up.set(1)
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason=reason)
        ProcessCollector(namespace="dcguard_collector", registry=self.registry)
