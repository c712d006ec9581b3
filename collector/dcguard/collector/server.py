"""The collector's lifecycle: start store, state, gRPC and HTTP in order; stop in reverse."""

from __future__ import annotations

import gc
import logging
import threading
import time

import grpc
from prometheus_client import generate_latest

from dcguard.collector.calls import answer, raw_method
from dcguard.collector.config import ServerConfig
from dcguard.collector.exposition.families.registry import HostRenderer, default_groups
from dcguard.collector.exposition.hosts import StateCache
from dcguard.collector.exposition.http import MetricsServer
from dcguard.collector.ingest.pool import IngestPool
from dcguard.collector.receive.admit import SubmitFront
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.receive.grpc_server import GrpcServer
from dcguard.collector.risk.engine import RiskEngine
from dcguard.collector.security.feature import SecurityFeature
from dcguard.collector.selfmetrics import SelfMetrics
from dcguard.collector.settle.submit import CollectorService
from dcguard.collector.store import StoreError, report_store
from dcguard.collector.trust.ca import CertificateAuthority, TlsFiles
from dcguard.collector.trust.enroll_service import EnrollService
from dcguard.collector.trust.registry import EnrollmentRegistry
from dcguard.common.config import parse_listen_address
from dcguard.common.i18n import resolve
from dcguard.common.pki import CertificateError

__all__ = ["CollectorServer", "submit_handler"]

log = logging.getLogger(__name__)

# How stale a collector's copy of hosts another collector serves may be at a
# scrape, with a shared store: well under a scrape interval and an agent's
# down window (down_after_intervals x its interval: 45 s by default), and at
# most one small query per second however often /metrics is read.
SHARED_REFRESH_SECONDS = 1.0


class CollectorServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.risk = RiskEngine(config.risk, config.down_after_intervals)
        # [server] language (or --lang, the locale): the words of stored detections.
        self.security = SecurityFeature(config.security, config.database, resolve(config.language))
        self.store = report_store(
            config.database, hooks=(self.risk.history, self.risk.signs, *self.security.hooks)
        )
        self.registry = EnrollmentRegistry(config.database)
        self.state = StateCache(HostRenderer(default_groups(config, self.risk)))
        self.metrics = SelfMetrics()
        self._grpc: GrpcServer | None = None
        self._pool: IngestPool | None = None
        self._http: MetricsServer | None = None
        self.grpc_port = 0
        self.metrics_port = 0
        self.enroll_port = 0
        self._refreshing = threading.Lock()
        self._refreshed_at = -SHARED_REFRESH_SECONDS

    def start(self) -> None:
        """Open the store, load state, then start serving (downstream first)."""
        self.store.open()
        self.registry.open()
        # Loading makes millions of objects that all live on (every host's
        # state): collecting during it only walks them again and again, a
        # third of the load time at 10,000 hosts. Nothing cyclic is left
        # behind by the load that one collection afterwards does not free.
        gc.disable()
        try:
            self.risk.load(self.config.database)
            self.state.load(self.store.agents())
        finally:
            gc.enable()
        self.security.start(self.metrics.registry)
        self.metrics.agents.set(len(self.state))
        _calm_gc()

        ca: CertificateAuthority | None = None
        enroll: EnrollService | None = None
        if self.config.insecure:
            auth = Authenticator(insecure=True)
        else:
            try:
                ca = CertificateAuthority(TlsFiles(self.config.tls_dir))
            except CertificateError as exc:
                raise RuntimeError(str(exc)) from None
            auth = Authenticator(insecure=False, ca=ca.cert, revocations=self.registry)
            enroll = EnrollService(
                ca, self.registry, auth, self.config.tls.client_cert_lifetime, self.metrics.registry
            )
        back = CollectorService(self.store, self.state, self.metrics, self.config.limits)
        # Submit stays here even with ingest processes: on the enrollment port
        # it is refused as unauthenticated (and counted) like anywhere else.
        methods = {"Submit": submit_handler(SubmitFront(auth, self.config.limits), back)}
        if enroll is not None:
            methods.update(enroll.methods())
        if self.config.ingest_processes:
            self._pool = IngestPool(
                self.config, self.config.ingest_processes, back, enroll, self.metrics.registry
            )
            self.grpc_port = self._pool.start()
        if self._pool is None or ca is not None:
            server = GrpcServer(self.config, methods)
            if self._pool is None:
                self.grpc_port = server.bind_agent_port()
            if ca is not None:
                self.enroll_port = server.bind_enroll_port()
                ehost, _ = parse_listen_address(self.config.tls.enroll_listen)
                log.info(
                    "enroll listening on %s:%d (TLS, CA %s)",
                    ehost,
                    self.enroll_port,
                    ca.fingerprint,
                )
            server.start()
            self._grpc = server
        host, _ = parse_listen_address(self.config.grpc_listen)

        mhost, mport = parse_listen_address(self.config.metrics_listen)
        http = MetricsServer(
            mhost,
            mport,
            self.metrics_page,
            idle_timeout=self.config.metrics_idle_timeout,
            max_connections=self.config.metrics_max_connections,
        )
        http.start()
        self._http = http
        self.metrics_port = http.port
        log.info(
            "listening grpc=%s:%d metrics=%s:%d data_dir=%s hosts=%d",
            host,
            self.grpc_port,
            mhost,
            self.metrics_port,
            self.config.data_dir,
            len(self.state),
        )

    def render_metrics(self) -> bytes:
        """The whole /metrics page: per-host families, then the collector's own."""
        return "".join(self.metrics_page()).encode("utf-8")

    def metrics_page(self) -> list[str]:
        """The /metrics page in pieces, as MetricsServer writes it."""
        self.refresh_shared_state()
        chunks = self.state.chunks(time.time())
        chunks.append(generate_latest(self.metrics.registry).decode("utf-8"))
        return chunks

    def refresh_shared_state(self) -> None:
        """Take every host another collector stored since we last looked (a shared store only).

        With a shared store, the collector's copy of a host is brought up to
        the database's before each scrape (at most once per
        SHARED_REFRESH_SECONDS, one scrape at a time): whichever collector
        Prometheus scrapes, a host has the same last_seen, counters and
        state, and a collector an agent left never shows it stale. Only rows
        whose revision moved are read. If the database cannot be read, the
        last state read is served and dcguard_collector_store_up says so.
        """
        if not self.store.shared or not self._refreshing.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now - self._refreshed_at < SHARED_REFRESH_SECONDS:
                return
            self._refreshed_at = now
            try:
                records = self.store.changed_agents(self.state.revisions())
            except StoreError as exc:
                self.metrics.store_up.set(0)
                log.warning("cannot refresh hosts from the shared store: %s", exc)
                return
            if records:
                # Their ransomware signs came with them, stored by the other collector.
                self._reload_signs()
            self.metrics.store_up.set(1)
            for record in records:
                self.state.update(record)
            self.metrics.agents.set(len(self.state))
        finally:
            self._refreshing.release()

    def _reload_signs(self) -> None:
        try:
            self.risk.signs.load(self.config.database, self.config.risk.longest_ransomware_window)
        except StoreError as exc:
            log.warning("cannot read ransomware signs from the shared store: %s", exc)

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let calls in flight finish, then close the store."""
        if self._pool is not None:
            self._pool.stop(grace)
        if self._grpc is not None:
            self._grpc.stop(grace)
        if self._http is not None:
            self._http.stop()
        self.security.stop()
        self.registry.close()
        self.store.close()
        # The log's last word: without it a log ending at "listening" cannot
        # tell a clean stop from a crash or a kill.
        log.info(
            "dcguard-collector stopped; %d hosts known, data in %s",
            len(self.state),
            self.config.data_dir,
        )


# Collections of the youngest generation every this many new container
# objects (Python's default is 700), and of the oldest one only after this
# many of the middle one (default 10).
GC_THRESHOLDS = (50_000, 20, 100)


def _calm_gc() -> None:
    """Keep the cyclic GC from stalling every request with thousands of hosts in memory.

    A full collection walks every tracked object: with 10,000 hosts' state
    that is a pause of a few hundred milliseconds, which with the default
    thresholds came often enough to dominate the p99 Submit latency. Almost
    all garbage here is freed by reference counting (state is replaced, not
    cyclic), so collecting rarely costs little memory. What exists at start
    (modules, configuration, the state just loaded) is frozen out of the
    collector's walks; frozen objects are still freed when no longer used.
    The startup garbage is collected first, so it is not frozen in.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def submit_handler(front: SubmitFront, back: CollectorService) -> grpc.RpcMethodHandler:
    """Submit served in one process: admit, then settle (concurrent calls commit together).

    The one place the two halves meet without ingest processes between them.
    """

    def submit(data: bytes, context: grpc.ServicerContext) -> bytes:
        return answer(back.settle([front.admit(data, context)])[0], context)

    return raw_method(submit)
