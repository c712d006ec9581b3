"""Data locations: whether each directory the agent found holding data is in a backup job.

One series per location the agent reported (at most validate_storage.MAX_ENTRIES per
host; the agent sends at most 200), so an unbacked PostgreSQL cluster or Samba
share is a line on a dashboard and the alert DataNotBackedUp, not only a risk reason.
"""

from __future__ import annotations

from collections.abc import Hashable

from dcguard.collector.exposition.families import AddSample, serialized
from dcguard.collector.exposition.text import Family
from dcguard.collector.store import AgentRecord

__all__ = ["CoverageGroup"]


class CoverageGroup:
    families: tuple[Family, ...] = (
        Family(
            "dcguard_data_location_backed_up",
            "gauge",
            "1 if a backup job covers this directory that holds data (a database's data "
            "directory, a share, a web root, a named path), else 0.",
        ),
        Family(
            "dcguard_data_location_discovery_incomplete",
            "gauge",
            "1 if the agent's last discovery of data locations stopped at a bound "
            "(files or time), so locations may be missing.",
        ),
    )
    live_families: tuple[Family, ...] = ()

    def key(self, record: AgentRecord) -> Hashable | None:
        # Discovery runs hourly: most reports repeat the last one's bytes.
        if record.latest is None:
            return ()
        return (record.latest.HasField("data_coverage"), serialized([record.latest.data_coverage]))

    def render(self, record: AgentRecord, add: AddSample) -> None:
        if record.latest is None or not record.latest.HasField("data_coverage"):
            return
        coverage = record.latest.data_coverage
        add("dcguard_data_location_discovery_incomplete", (), bool(coverage.incomplete))
        for location in coverage.locations:
            labels = (("path", location.path), ("kind", location.kind))
            add("dcguard_data_location_backed_up", labels, location.backed_up)

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        pass
