"""What agent and collector agree on beyond the proto: gRPC metadata keys."""

from __future__ import annotations

__all__ = ["RETRY_AFTER_KEY"]

# Trailing metadata telling a throttled agent when to come back, in
# milliseconds (the role of OTel's RetryInfo), so it neither hammers the
# collector nor backs off for a minute and stalls its backlog.
RETRY_AFTER_KEY = "dcguard-retry-after-ms"
