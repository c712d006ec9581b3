"""The back half of Submit: count, rate-limit, store, update state.

What receive/admit.py admitted is settled here, in the process that owns the one
database and the one state: called from gRPC's threads when the collector
serves the agent port itself (server.py joins the two halves), or from
ingest/pool.py's loop when ingest processes do. It knows the front only
through calls.py, and the host state only through HostStateSink.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import grpc

from dcguard.collector.calls import Admission, Reply, parse_request
from dcguard.collector.clock import clamp_report_times
from dcguard.collector.errors import Rejection
from dcguard.collector.limits import Limits
from dcguard.collector.ratelimit import RateLimiter
from dcguard.collector.selfmetrics import SelfMetrics
from dcguard.collector.store import AgentRecord, ReportStore, StoreError, StoreJob
from dcguard.v1 import collector_pb2 as pb

__all__ = ["CollectorService", "HostStateSink"]


class HostStateSink(Protocol):
    """Where a stored host's latest state goes (the exposition's host cache)."""

    def update(self, record: AgentRecord) -> None: ...

    def __len__(self) -> int: ...


log = logging.getLogger(__name__)


class CollectorService:
    """Settles admitted Submits; every outcome is counted."""

    def __init__(
        self,
        store: ReportStore,
        state: HostStateSink,
        metrics: SelfMetrics,
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._metrics = metrics
        self._limits = limits or Limits()
        self._rate = RateLimiter(self._limits.rate_per_second, self._limits.rate_burst)
        self._clamping: set[str] = set()  # hosts whose report times are being clamped

    def settle(self, admissions: Sequence[Admission]) -> list[Reply]:
        """Answer each admission; those accepted are stored together, in one commit."""
        replies: list[Reply] = [Reply()] * len(admissions)
        accepted: list[tuple[int, StoreJob]] = []
        for index, admission in enumerate(admissions):
            try:
                accepted.append((index, self._accept(admission)))
            except Rejection as exc:
                replies[index] = self._refuse(admission, exc)
        results = self._store.apply_many([job for _, job in accepted])
        if results:
            # A batch refused for its content says nothing of the database.
            self._metrics.store_up.set(
                0 if all(isinstance(r, StoreError) and r.transient for r in results) else 1
            )
        for (index, _), result in zip(accepted, results):
            if isinstance(result, StoreError):
                replies[index] = self._not_stored(admissions[index], result)
                continue
            if result.duplicates:
                self._metrics.duplicate.inc(result.duplicates)
            if result.acknowledged_elsewhere:
                self._metrics.elsewhere.inc(result.acknowledged_elsewhere)
                log.warning(
                    "%s: %d report(s) before sequence %d were acknowledged by a collector "
                    "whose store this one does not share; not counted lost. List only "
                    "collectors sharing one store in an agent's addresses",
                    result.record.host,
                    result.acknowledged_elsewhere,
                    result.record.max_sequence,
                )
            self._state.update(result.record)
            replies[index] = Reply(
                pb.SubmitResponse(acked_sequence=result.record.max_sequence).SerializeToString()
            )
        self._metrics.agents.set(len(self._state))
        return replies

    def _accept(self, admission: Admission) -> StoreJob:
        self._metrics.received.inc(admission.reports)
        if admission.identity is not None:
            self._rate.check(admission.identity.host)
        if admission.rejection is not None:
            raise admission.rejection
        assert admission.identity is not None  # noqa: S101 - admitted means identified
        request = admission.request
        if request is None:  # it came from an ingest process: parse it here again
            request = parse_request(admission.data)
        skew, clamped = clamp_report_times(request.reports, admission.received_at, self._limits)
        self._note_clock(admission.identity.host, skew, clamped)
        return StoreJob(
            admission.identity,
            request.agent,
            request.reports,
            admission.received_at,
            acked_sequence=request.acked_sequence,
            clock_skew=skew,
        )

    def _note_clock(self, host: str, skew: float, clamped: int) -> None:
        """Log when a host's reports start and stop being clamped: once, not per report."""
        if clamped and host not in self._clamping:
            self._clamping.add(host)
            log.warning(
                "%s's clock is %.0f s off (ahead if positive): its reports are stored "
                "at their arrival time until it is corrected",
                host,
                skew,
            )
        elif not clamped and host in self._clamping:
            self._clamping.discard(host)
            log.info("%s's report times are plausible again (skew %.1f s)", host, skew)

    def _not_stored(self, admission: Admission, error: StoreError) -> Reply:
        """A batch the store could not take: come back later, or never (counted)."""
        if error.transient:
            log.error("%s", error)
            return Reply.refusal(grpc.StatusCode.UNAVAILABLE, "the collector cannot store now")
        # Answering UNAVAILABLE here would have the agent resend it forever,
        # holding back every report behind it.
        log.warning("%s; refused it for good", error)
        return self._refuse(
            admission, Rejection(grpc.StatusCode.INVALID_ARGUMENT, error.reason, str(error))
        )

    def _refuse(self, admission: Admission, exc: Rejection) -> Reply:
        count = max(admission.reports, 1)
        self._metrics.rejected.labels(reason=exc.reason).inc(count)
        if admission.identity is not None:
            self._metrics.agent_rejected.labels(
                host=admission.identity.host,
                department=admission.identity.department,
                reason=exc.reason,
            ).inc(count)
        # A throttled agent is told when to come back; one line per call would flood.
        log.log(
            logging.DEBUG if exc.reason == "rate_limited" else logging.INFO,
            "refused a batch from %s: %s",
            admission.peer,
            exc.message,
        )
        return Reply.refusal(exc.code, exc.message, exc.retry_after)
