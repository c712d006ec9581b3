"""Deciding who the peer is: the one place a request's identity comes from.

In insecure mode (loopback demos and tests only) the identity is what the
agent claims. With mTLS the host is the client certificate's, and a claim
that differs is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from dcguard.collector.errors import Rejection
from dcguard.common.names import check_name
from dcguard.v1 import collector_pb2 as pb

__all__ = ["Authenticator", "PeerIdentity"]


@dataclass(frozen=True)
class PeerIdentity:
    host: str
    department: str


class Authenticator:
    """Turns a gRPC call and the agent's claim into a PeerIdentity, or refuses."""

    def __init__(self, *, insecure: bool) -> None:
        self._insecure = insecure

    def identify(self, context: grpc.ServicerContext, claim: pb.AgentInfo) -> PeerIdentity:
        for field in ("host", "department"):
            problem = check_name(getattr(claim, field))
            if problem:
                raise Rejection(grpc.StatusCode.INVALID_ARGUMENT, "invalid_identity",
                                f"agent.{field} {problem}")
        if self._insecure:
            return PeerIdentity(host=claim.host, department=claim.department)
        raise Rejection(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated",
                        "a client certificate is required")
