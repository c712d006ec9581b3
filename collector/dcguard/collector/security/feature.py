"""Wiring the security side into the collector: hook, pruner, forwarders, counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from dcguard.collector.security.config import SecurityConfig
from dcguard.collector.security.detect import Detector
from dcguard.collector.security.forward import (
    Destination,
    FileDestination,
    Forwarder,
    SyslogDestination,
)
from dcguard.collector.security.storage import EventHook, Pruner
from dcguard.collector.store import Database, ReportHook
from dcguard.common.i18n import Language

__all__ = ["SecurityFeature"]


class _Counters:
    """The collector's own forwarding and pruning counters (registered once per server)."""

    def __init__(self, registry: CollectorRegistry, destinations: list[str]) -> None:
        self._forwarded = Counter(
            "dcguard_collector_events_forwarded",
            "Security events delivered to a destination.",
            ["destination"],
            registry=registry,
        )
        self._failed = Counter(
            "dcguard_collector_events_forward_failed",
            "Security events whose delivery failed and will be retried.",
            ["destination"],
            registry=registry,
        )
        self._backlog = Gauge(
            "dcguard_collector_events_forward_backlog",
            "Stored security events not yet delivered to a destination.",
            ["destination"],
            registry=registry,
        )
        self.pruned = Counter(
            "dcguard_collector_events_pruned",
            "Security events deleted after the retention period.",
            registry=registry,
        )
        for name in destinations:
            self._forwarded.labels(destination=name)
            self._failed.labels(destination=name)
            self._backlog.labels(destination=name)

    def forwarded(self, destination: str, count: int) -> None:
        self._forwarded.labels(destination=destination).inc(count)

    def failed(self, destination: str, count: int) -> None:
        self._failed.labels(destination=destination).inc(count)

    def backlog(self, destination: str, count: int) -> None:
        self._backlog.labels(destination=destination).set(count)


class SecurityFeature:
    """What CollectorServer needs: a hook, and threads to start and stop."""

    def __init__(
        self, config: SecurityConfig, database: Database, lang: Language | None = None
    ) -> None:
        self._config = config
        self._database = database
        self.hooks: tuple[ReportHook, ...] = (EventHook([Detector(config.detection, lang)]),)
        forward = config.forward
        self._destinations: list[Destination] = []
        if forward.syslog is not None:
            self._destinations.append(SyslogDestination(forward.syslog, forward.timeout_seconds))
        if forward.file is not None:
            self._destinations.append(FileDestination(forward.file))
        self._threads: list[Forwarder | Pruner] = []

    def start(self, registry: CollectorRegistry) -> None:
        """Start the pruner and forwarders; call after the store is open (migrated)."""
        names = [d.name for d in self._destinations]
        counters = _Counters(registry, names)
        forward = self._config.forward
        events = self._config.events
        self._threads = [
            Pruner(
                self._database,
                events.retention_seconds,
                events.prune_interval_seconds,
                names,
                on_pruned=counters.pruned.inc,
            ),
            *(
                Forwarder(
                    self._database, d, counters, forward.batch_size, forward.retry_max_seconds
                )
                for d in self._destinations
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for thread in self._threads:
            thread.stop()
        self._threads = []
