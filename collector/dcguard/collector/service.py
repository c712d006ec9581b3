"""The gRPC Collector service: receive → authenticate → validate → store → state.

Requests arrive as raw bytes and are decoded here, so a garbage or truncated
message is answered INVALID_ARGUMENT and counted, instead of failing inside
gRPC where nobody would count it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import grpc

from dcguard.collector.auth import Authenticator
from dcguard.collector.errors import RETRY_AFTER_KEY, Rejection
from dcguard.collector.ratelimit import RateLimiter
from dcguard.collector.selfmetrics import SelfMetrics
from dcguard.collector.state import StateCache
from dcguard.collector.store import Store, StoreError
from dcguard.collector.validate import Limits, parse_request, validate_request
from dcguard.v1 import collector_pb2 as pb

__all__ = ["CollectorService"]

log = logging.getLogger(__name__)
SERVICE_NAME = "dcguard.v1.Collector"


class CollectorService:
    """Handles Submit; every outcome is counted."""

    def __init__(self, store: Store, state: StateCache, auth: Authenticator,
                 metrics: SelfMetrics, limits: Limits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._state = state
        self._auth = auth
        self._metrics = metrics
        self._limits = limits or Limits()
        self._clock = clock
        self._rate = RateLimiter(self._limits.rate_per_second, self._limits.rate_burst)

    def handler(self) -> grpc.GenericRpcHandler:
        """A generic handler taking raw request bytes (see module docstring)."""
        submit = grpc.unary_unary_rpc_method_handler(
            self.submit, request_deserializer=None,
            response_serializer=pb.SubmitResponse.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Submit": submit})

    def submit(self, data: bytes, context: grpc.ServicerContext) -> pb.SubmitResponse:
        reports = 0
        try:
            request = parse_request(data)
            reports = len(request.reports)
            self._metrics.received.inc(reports)
            identity = self._auth.identify(context, request.agent)
            self._rate.check(identity.host)
            now = self._clock()
            validate_request(request, now, self._limits)
            result = self._store.apply(identity, request.agent, request.reports, now)
        except Rejection as exc:
            self._metrics.rejected.labels(reason=exc.reason).inc(max(reports, 1))
            # A throttled agent is told when to come back; one line per call would flood.
            log.log(logging.DEBUG if exc.reason == "rate_limited" else logging.INFO,
                    "refused a batch from %s: %s", context.peer(), exc.message)
            if exc.retry_after > 0:
                context.set_trailing_metadata(
                    ((RETRY_AFTER_KEY, str(max(1, round(exc.retry_after * 1000)))),))
            _abort(context, exc.code, exc.message)
        except StoreError as exc:
            log.error("%s", exc)
            _abort(context, grpc.StatusCode.UNAVAILABLE, "the collector cannot store now")
        if result.duplicates:
            self._metrics.duplicate.inc(result.duplicates)
        self._state.update(result.record)
        self._metrics.agents.set(len(self._state))
        return pb.SubmitResponse(acked_sequence=result.record.max_sequence)


def _abort(context: Any, code: grpc.StatusCode, message: str) -> None:
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
