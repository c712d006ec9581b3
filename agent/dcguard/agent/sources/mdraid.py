"""mdraid: every Linux software RAID array from /proc/mdstat (path: [storage] mdstat).

A host without the md driver has no /proc/mdstat: that is "no arrays", not
an error. Reading the file is cheap, so it happens inside collect().
"""

from __future__ import annotations

from pathlib import Path

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.agent.sources.storage.config import parse_storage
from dcguard.agent.sources.storage.mdstat import parse_mdstat
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["MdraidSource"]


class MdraidSource:
    name = "mdraid"

    def __init__(self, mdstat: Path) -> None:
        self._mdstat = mdstat

    def collect(self, report: pb.Report) -> None:
        try:
            text = self._mdstat.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        for array in parse_mdstat(text):
            report.raid_arrays.add(
                name=array.name,
                level=array.level,
                state=array.state,
                disks_active=array.disks_active,
                disks_total=array.disks_total,
                disks_failed=len(array.failed_members),
                disks_spare=len(array.spares),
                degraded=array.degraded,
                sync_action=array.sync_action,
                sync_progress_ratio=array.sync_progress_ratio,
                members=array.members,
                failed_members=array.failed_members,
            )

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


@register("mdraid", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    return MdraidSource(parse_storage(config, context).mdstat)
