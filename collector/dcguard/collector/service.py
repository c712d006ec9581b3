"""The gRPC Collector service: receive → authenticate → validate → store → state.

Requests arrive as raw bytes and are decoded here, so a garbage or truncated
message is answered INVALID_ARGUMENT and counted, instead of failing inside
gRPC where nobody would count it. The work is split in two halves that meet
only through calls.py: SubmitFront (parse, authenticate, validate: what can
run in any process) and CollectorService (count, rate-limit, store, update
state: what needs the one database and the one state).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Callable

import grpc

from dcguard.collector.auth import Authenticator
from dcguard.collector.calls import Admission, Reply, answer
from dcguard.collector.errors import Rejection
from dcguard.collector.ratelimit import RateLimiter
from dcguard.collector.selfmetrics import SelfMetrics
from dcguard.collector.state import StateCache
from dcguard.collector.store import Store, StoreError, StoreJob
from dcguard.collector.validate import Limits, parse_request, validate_request
from dcguard.v1 import collector_pb2 as pb

__all__ = ["SERVICE_NAME", "CollectorService", "SubmitFront", "submit_handler"]

log = logging.getLogger(__name__)
SERVICE_NAME = "dcguard.v1.Collector"


class SubmitFront:
    """Parse, authenticate and validate a Submit; refuses nothing itself, only finds why."""

    def __init__(self, auth: Authenticator, limits: Limits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._auth = auth
        self._limits = limits or Limits()
        self._clock = clock

    def admit(self, data: bytes, context: grpc.ServicerContext) -> Admission:
        now = self._clock()
        reports = 0
        identity = None
        try:
            request = parse_request(data)
            reports = len(request.reports)
            identity = self._auth.identify(context, request.agent)
            validate_request(request, now, self._limits)
        except Rejection as exc:
            return Admission(context.peer(), now, reports, identity, exc)
        return Admission(context.peer(), now, reports, identity, None, data, request)


class CollectorService:
    """Settles admitted Submits; every outcome is counted."""

    def __init__(self, store: Store, state: StateCache, metrics: SelfMetrics,
                 limits: Limits | None = None) -> None:
        self._store = store
        self._state = state
        self._metrics = metrics
        limits = limits or Limits()
        self._rate = RateLimiter(limits.rate_per_second, limits.rate_burst)

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
        for (index, _), result in zip(accepted, results):
            if isinstance(result, StoreError):
                log.error("%s", result)
                replies[index] = Reply.refusal(grpc.StatusCode.UNAVAILABLE,
                                               "the collector cannot store now")
                continue
            if result.duplicates:
                self._metrics.duplicate.inc(result.duplicates)
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
        request = admission.request or parse_request(admission.data)
        return StoreJob(admission.identity, request.agent, request.reports,
                        admission.received_at)

    def _refuse(self, admission: Admission, exc: Rejection) -> Reply:
        self._metrics.rejected.labels(reason=exc.reason).inc(max(admission.reports, 1))
        # A throttled agent is told when to come back; one line per call would flood.
        log.log(logging.DEBUG if exc.reason == "rate_limited" else logging.INFO,
                "refused a batch from %s: %s", admission.peer, exc.message)
        return Reply.refusal(exc.code, exc.message, exc.retry_after)


def submit_handler(front: SubmitFront, back: CollectorService) -> grpc.RpcMethodHandler:
    """Submit served in one process: admit, then settle (concurrent calls commit together)."""

    def submit(data: bytes, context: grpc.ServicerContext) -> bytes:
        return answer(back.settle([front.admit(data, context)])[0], context)

    return grpc.unary_unary_rpc_method_handler(submit, request_deserializer=None,
                                               response_serializer=None)
