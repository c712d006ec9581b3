"""coverage: the directories this server keeps data in, and the backup job covering each.

Discovery (storage/data_locations.py) walks directories, so it runs in a
background thread every [coverage] interval (1 h by default), never inside the
report cycle; that one discovery (storage/discovery_feed.py) also tells the
ransomware watcher what to watch. Which job covers each location is decided at every collect()
from the config and the paths the backup source last recorded from the newest
snapshots (state_dir/backup-state.json, read again only when it changes), so a
snapshot that starts to include a directory shows within one report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.agent.sources.backup import STATE_FILE, recorded_paths
from dcguard.agent.sources.storage.backup_config import BackupJob, parse_backups
from dcguard.agent.sources.storage.coverage import configure_feed, covering_job
from dcguard.agent.sources.storage.data_locations import Discovery
from dcguard.agent.sources.storage.discovery_feed import DiscoveryFeed
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["CoverageSource"]

log = logging.getLogger(__name__)


class DiscoveryPendingError(Exception):
    """The first discovery has not finished: the report says so instead of claiming none."""


class CoverageSource:
    name = "coverage"

    def __init__(self, feed: DiscoveryFeed, jobs: list[BackupJob], state_dir: Path) -> None:
        self._feed = feed
        self._jobs = jobs
        self._state_file = state_dir / STATE_FILE
        self._reported_incomplete: str | None = None
        self._recorded: dict[str, tuple[str, ...]] = {}
        self._recorded_stamp: tuple[int, int] | None = None
        feed.listen(self._discovered)

    def _discovered(self, found: Discovery) -> None:
        if found.incomplete and found.incomplete != self._reported_incomplete:
            log.warning("coverage: %s", found.incomplete)
        self._reported_incomplete = found.incomplete

    def _recorded_paths(self) -> dict[str, tuple[str, ...]]:
        """The backup source's saved paths, read again only when its file changed."""
        try:
            st = self._state_file.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._recorded_stamp:
            self._recorded = recorded_paths(self._state_file.parent) if stamp else {}
            self._recorded_stamp = stamp
        return self._recorded

    def start(self) -> bool:
        return self._feed.start()

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        return self._feed.wait_rounds(rounds, timeout)

    def collect(self, report: pb.Report) -> None:
        self.start()
        found, at = self._feed.latest()
        if found is None:
            raise DiscoveryPendingError("the first discovery of data locations has not finished")
        recorded = self._recorded_paths()
        coverage = report.data_coverage
        coverage.discovered_at.FromNanoseconds(int(at * 1e9))
        coverage.incomplete = found.incomplete[:500]
        for location in found.locations:
            job = covering_job(location, self._jobs, recorded)
            coverage.locations.add(
                path=location.path,
                kind=location.kind,
                owner=location.owner[:200],
                backed_up=bool(job),
                covered_by=job,
            )

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self._feed.close()


@register("coverage", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    configure_feed(config, context)
    return CoverageSource(context.discoveries, parse_backups(config), context.state_dir)
