"""Why the collector refuses a request.

Every refusal is a Rejection carrying the gRPC status to answer with and a
short reason that becomes the `reason` label of
dcguard_collector_reports_rejected_total. Nothing is stored for a rejected
request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from dcguard.collector.identity import PeerIdentity

__all__ = ["REJECTION_REASONS", "Rejection"]

# Every reason is exported at 0 from the start so alert rules see the series.
REJECTION_REASONS = (
    "malformed",  # not a valid SubmitRequest protobuf
    "invalid_identity",  # host or department missing or not a valid name
    "invalid_report",  # sequence, timestamp or a field out of bounds
    "too_large",  # too many reports, or a field too long
    "unauthenticated",  # no acceptable client certificate
    "permission_denied",  # a valid agent speaking for another host, or revoked
    "rate_limited",  # an agent sending faster than its limit
    "unstorable",  # valid, but storing it failed for its content (never retried)
)


class Rejection(Exception):
    """A request refused with a gRPC status and a counted reason."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        retry_after: float = 0.0,
        identity: PeerIdentity | None = None,
    ) -> None:
        super().__init__(message)
        if reason not in REJECTION_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.code = code
        self.reason = reason
        self.message = message
        # Seconds after which the same request would be taken (rate limits):
        # sent to the agent as RETRY_AFTER_KEY trailing metadata.
        self.retry_after = retry_after
        # Who was refused, when the refusal itself establishes it (a certificate
        # of our CA that is revoked or unknown): counted per host then.
        self.identity = identity
