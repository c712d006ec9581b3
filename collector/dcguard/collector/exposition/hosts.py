"""The latest state of every host, kept in memory for fast reads.

Rebuilt from the store at start, so a restarted collector shows every host
before any agent reports again; updated after each successful store. Each
host carries its pre-rendered exposition fragments, so a scrape renders
only the few clock-dependent samples.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dcguard.collector.exposition.families.registry import HostRenderer, Rendered
from dcguard.collector.exposition.text import family_chunks
from dcguard.collector.store import AgentRecord

__all__ = ["HostState", "StateCache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostState:
    record: AgentRecord
    rendered: Rendered

    @property
    def fragments(self) -> dict[str, str]:
        return self.rendered.fragments


class StateCache:
    """Host name → HostState; readers get a snapshot without holding the lock."""

    def __init__(self, renderer: HostRenderer) -> None:
        self.renderer = renderer
        self._hosts: dict[str, HostState] = {}
        self._lock = threading.Lock()

    def load(self, records: list[AgentRecord]) -> None:
        by_host = {r.host: r for r in records}
        try:
            rendered = self.renderer.render_all(by_host.values())
        except Exception:  # noqa: BLE001 - one host must not keep the collector from starting
            rendered = {}
            for host, record in by_host.items():
                result = self._render(record, None)
                if result is not None:
                    rendered[host] = result
        states = {host: HostState(by_host[host], r) for host, r in rendered.items()}
        with self._lock:
            self._hosts = states

    def update(self, record: AgentRecord) -> None:
        """Show the host's new record, unless the one held is newer (a shared store's revision).

        If it cannot be rendered, its previous one stays.
        """
        previous = self._hosts.get(record.host)  # a dict read is atomic; the lock guards writes
        if previous is not None and record.revision < previous.record.revision:
            return
        rendered = self._render(record, previous.rendered if previous else None)
        if rendered is None:
            return
        with self._lock:
            current = self._hosts.get(record.host)
            if current is None or record.revision >= current.record.revision:
                self._hosts[record.host] = HostState(record, rendered)

    def revisions(self) -> dict[str, int]:
        """Host -> revision of the record held (what a shared store is asked to go beyond)."""
        with self._lock:
            return {host: state.record.revision for host, state in self._hosts.items()}

    def _render(self, record: AgentRecord, previous: Rendered | None) -> Rendered | None:
        # The report is stored already: failing here would fail the agent's
        # call (and its retries), or, at start, the whole collector.
        try:
            return self.renderer.render_host(record, previous)
        except Exception:  # a bug in one group must not cost the other hosts
            log.exception(
                "cannot render the metrics of %s; its /metrics series stay as they were",
                record.host,
            )
            return None

    def snapshot(self) -> list[HostState]:
        """Every host, sorted by department then host (a stable exposition order)."""
        with self._lock:
            hosts = list(self._hosts.values())
        hosts.sort(key=lambda s: (s.record.department, s.record.host))
        return hosts

    def render(self, now: float) -> str:
        """The per-host part of /metrics."""
        return "".join(self.chunks(now))

    def chunks(self, now: float) -> list[str]:
        """The per-host part of /metrics in pieces, to be written one after another."""
        hosts = self.snapshot()
        live = [self.renderer.render_live(h.record, now) for h in hosts]
        return family_chunks(self.renderer.families, [*live, *(h.fragments for h in hosts)])

    def __len__(self) -> int:
        return len(self._hosts)
