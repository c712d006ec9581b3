"""A call as the two halves of the collector see it: admitted by the front, settled behind.

The front (the gRPC side: TLS, parsing, authentication, validation) and the
back (rate limit, counters, store, state) meet only through these values,
so they run in one thread or in different processes (ingest/pool.py)
without either knowing which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import grpc

from dcguard.collector.errors import Rejection
from dcguard.collector.identity import PeerIdentity
from dcguard.common.wire import RETRY_AFTER_KEY
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "SERVICE_NAME",
    "Admission",
    "RenewCall",
    "Reply",
    "answer",
    "parse_request",
    "raw_method",
]

SERVICE_NAME = "dcguard.v1.Collector"


@dataclass(frozen=True)
class Admission:
    """A Submit after the front: who sent it, and the first problem found, if any.

    `identity` is None when the caller was not authenticated (or the request
    did not parse); a rejection with an identity was found by validation, or
    refused a certificate of our CA (revoked, unknown to the registry) whose
    names are known: either way the caller's rate limit is charged and the
    refusal is counted for that host.
    """

    peer: str
    received_at: float
    reports: int
    identity: PeerIdentity | None
    rejection: Rejection | None
    data: bytes = b""  # the request as received; empty when rejected
    request: pb.SubmitRequest | None = None  # the parsed request, within one process only

    def for_transfer(self) -> Admission:
        """This admission without the parsed request, which the back parses again."""
        return Admission(
            self.peer, self.received_at, self.reports, self.identity, self.rejection, self.data
        )


@dataclass(frozen=True)
class RenewCall:
    """A Renew after the front: the certificate's identity, or why it was refused."""

    peer: str
    data: bytes
    identity: PeerIdentity | None
    rejection: Rejection | None


@dataclass(frozen=True)
class Reply:
    """How a call is answered: a serialized response, or a status and message."""

    payload: bytes = b""
    code: grpc.StatusCode | None = None
    message: str = ""
    retry_after_ms: int = 0

    @classmethod
    def refusal(cls, code: grpc.StatusCode, message: str, retry_after: float = 0.0) -> Reply:
        return cls(
            code=code,
            message=message,
            retry_after_ms=max(1, round(retry_after * 1000)) if retry_after > 0 else 0,
        )


def raw_method(behaviour: Callable[[bytes, Any], bytes]) -> grpc.RpcMethodHandler:
    """A unary method taking and returning raw bytes: requests are decoded (and
    garbage counted) by our code, responses come serialized in a Reply."""
    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=None, response_serializer=None
    )


def answer(reply: Reply, context: Any) -> bytes:
    """Return the reply's payload to gRPC, or end the call with its status."""
    if reply.code is None:
        return reply.payload
    if reply.retry_after_ms:
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(reply.retry_after_ms)),))
    context.abort(reply.code, reply.message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def parse_request(data: bytes) -> pb.SubmitRequest:
    """Decode a SubmitRequest; garbage is a counted INVALID_ARGUMENT, not a server error."""
    request = pb.SubmitRequest()
    try:
        request.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise Rejection(
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed",
            f"not a SubmitRequest: {type(exc).__name__}",
        ) from None
    return request
