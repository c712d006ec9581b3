"""The data-loss risk score and reasons, evaluated by the one RiskEngine.

The rules run when a host's record changes. Reasons the clock cannot change
before the next report (a failing disk, or no finding at all) are rendered
then, and only if the set of standing or timed reasons changed (most reports
change neither, so the host's previous samples are reused); only the score
and the reasons with a time window (agent_silent, a backup turning stale,
an I/O error ageing out) are rendered at scrape time, which keeps a scrape
of thousands of hosts to a few samples per host.
Every reason is exported for every host, 1 active and 0 not, so a dashboard
tells "fine" from "not reported".
"""

from __future__ import annotations

from collections.abc import Hashable

from dcguard.collector.exposition.families import AddSample
from dcguard.collector.exposition.text import Family
from dcguard.collector.risk.config import REASONS
from dcguard.collector.risk.engine import RiskEngine
from dcguard.collector.store import AgentRecord

__all__ = ["RiskGroup"]

_REASON_LABELS = tuple((("reason", reason),) for reason in REASONS)


class RiskGroup:
    families: tuple[Family, ...] = ()
    live_families: tuple[Family, ...] = (
        Family(
            "dcguard_data_loss_risk_score",
            "gauge",
            "Data-loss risk, 0-100: capped sum of the weights of the active reasons.",
        ),
        Family(
            "dcguard_data_loss_risk",
            "gauge",
            "1 for each active data-loss risk reason, 0 for each inactive one.",
        ),
    )

    def __init__(self, engine: RiskEngine) -> None:
        self.engine = engine

    def key(self, record: AgentRecord) -> Hashable | None:
        # The rules read the whole record and the filesystem trends, so they
        # run on every report (scrapes reuse the result, see prepare()); but
        # what render() writes depends only on these two sets, which most
        # reports leave as they were: then the host's samples are reused.
        prepared = self.engine.prepare(record)
        return prepared.always, prepared.timed

    def render(self, record: AgentRecord, add: AddSample) -> None:
        prepared = self.engine.prepare(record)
        for reason, label in zip(REASONS, _REASON_LABELS):
            if reason not in prepared.timed:
                add("dcguard_data_loss_risk", label, reason in prepared.always)

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        prepared = self.engine.prepare(record)
        active = prepared.active_reasons(now)
        add("dcguard_data_loss_risk_score", (), prepared.score(active))
        timed = prepared.timed
        for reason, label in zip(REASONS, _REASON_LABELS):
            if reason in timed:
                add("dcguard_data_loss_risk", label, reason in active)
