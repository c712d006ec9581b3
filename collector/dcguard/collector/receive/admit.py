"""The front half of the agent port's calls: decode, authenticate, validate.

It refuses nothing itself: it finds who is calling and the first problem
with what they sent, and hands that on as an Admission or RenewCall
(calls.py) for the back half to settle. It needs no database write and no
shared state, so it runs in any process: the collector's own, or its
ingest processes (ingest/worker.py), which import only this side.
"""

from __future__ import annotations

import time
from typing import Callable

import grpc

from dcguard.collector.calls import Admission, RenewCall, parse_request
from dcguard.collector.errors import Rejection
from dcguard.collector.limits import Limits
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.receive.validate import validate_request

__all__ = ["SubmitFront", "admit_renew"]


class SubmitFront:
    """Parse, authenticate and validate a Submit; refuses nothing itself, only finds why."""

    def __init__(
        self,
        auth: Authenticator,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
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
            return Admission(context.peer(), now, reports, identity or exc.identity, exc)
        return Admission(context.peer(), now, reports, identity, None, data, request)


def admit_renew(auth: Authenticator, data: bytes, context: grpc.ServicerContext) -> RenewCall:
    """The front half of Renew: whose certificate is presented (any process can tell)."""
    try:
        identity = auth.certificate_identity(context)
    except Rejection as exc:
        return RenewCall(context.peer(), b"", None, exc)
    return RenewCall(context.peer(), data, identity, None)
