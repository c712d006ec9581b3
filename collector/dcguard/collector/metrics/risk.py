"""The data-loss risk score and reasons, evaluated by the one RiskEngine.

Both families are clock-dependent (a backup turns stale while its host is
silent), so they are rendered at scrape time; the rules themselves ran when
the host's record changed, so a scrape only compares a few timestamps.
Every reason is exported for every host, 1 active and 0 not, so a dashboard
tells "fine" from "not reported".
"""

from __future__ import annotations

from dcguard.collector.exposition import Family
from dcguard.collector.metrics import AddSample
from dcguard.collector.risk.config import REASONS
from dcguard.collector.risk.engine import RiskEngine
from dcguard.collector.store import AgentRecord

__all__ = ["RiskGroup"]

_REASON_LABELS = tuple((("reason", reason),) for reason in REASONS)


class RiskGroup:
    families: tuple[Family, ...] = ()
    live_families: tuple[Family, ...] = (
        Family("dcguard_data_loss_risk_score", "gauge",
               "Data-loss risk, 0-100: capped sum of the weights of the active reasons."),
        Family("dcguard_data_loss_risk", "gauge", "1 for each active data-loss risk reason."),
    )

    def __init__(self, engine: RiskEngine) -> None:
        self.engine = engine

    def render(self, record: AgentRecord, add: AddSample) -> None:
        # Nothing static to export; run the rules now, off the scrape path.
        self.engine.prepare(record)

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        prepared = self.engine.prepare(record)
        active = prepared.active_reasons(now)
        add("dcguard_data_loss_risk_score", (), prepared.score(active))
        for reason, label in zip(REASONS, _REASON_LABELS):
            add("dcguard_data_loss_risk", label, reason in active)
