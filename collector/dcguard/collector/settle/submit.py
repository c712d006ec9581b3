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
from dcguard.collector.errors import Rejection
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

    def __init__(self, store: ReportStore, state: HostStateSink, metrics: SelfMetrics,
                 rate: RateLimiter | None = None) -> None:
        self._store = store
        self._state = state
        self._metrics = metrics
        self._rate = rate or RateLimiter(0, 0)

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
            self._metrics.store_up.set(0 if all(isinstance(r, StoreError) for r in results)
                                       else 1)
        for (index, _), result in zip(accepted, results):
            if isinstance(result, StoreError):
                log.error("%s", result)
                replies[index] = Reply.refusal(grpc.StatusCode.UNAVAILABLE,
                                               "the collector cannot store now")
                continue
            if result.duplicates:
                self._metrics.duplicate.inc(result.duplicates)
            if result.acknowledged_elsewhere:
                self._metrics.elsewhere.inc(result.acknowledged_elsewhere)
                log.warning(
                    "%s: %d report(s) before sequence %d were acknowledged by a collector "
                    "whose store this one does not share; not counted lost. List only "
                    "collectors sharing one store in an agent's addresses",
                    result.record.host, result.acknowledged_elsewhere,
                    result.record.max_sequence)
            self._state.update(result.record)
            replies[index] = Reply(pb.SubmitResponse(
                acked_sequence=result.record.max_sequence).SerializeToString())
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
        return StoreJob(admission.identity, request.agent, request.reports,
                        admission.received_at, request.acked_sequence)

    def _refuse(self, admission: Admission, exc: Rejection) -> Reply:
        self._metrics.rejected.labels(reason=exc.reason).inc(max(admission.reports, 1))
        # A throttled agent is told when to come back; one line per call would flood.
        log.log(logging.DEBUG if exc.reason == "rate_limited" else logging.INFO,
                "refused a batch from %s: %s", admission.peer, exc.message)
        return Reply.refusal(exc.code, exc.message, exc.retry_after)

