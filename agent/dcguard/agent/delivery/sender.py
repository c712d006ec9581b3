"""Submitting reports to the collector over gRPC, with failover across addresses.

The sender only sends and classifies the outcome; it knows nothing of
spooling or retry timing. A gRPC failure becomes RetryableError (try again
later, maybe elsewhere) or PermanentError (this batch will never be taken).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Callable

import grpc

from dcguard.agent.delivery.endpoint import CollectorConfig
from dcguard.common.wire import RETRY_AFTER_KEY
from dcguard.v1 import collector_pb2 as pb

__all__ = ["DeliveryError", "PermanentError", "RetryableError", "Sender", "encode_request"]

log = logging.getLogger(__name__)

# Codes that say "not now" rather than "never": the report stays queued.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)
# Codes after which the next address is worth a try within the same attempt.
_FAILOVER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


_SUBMIT = "/dcguard.v1.Collector/Submit"
_AGENT_TAG = b"\x0a"  # SubmitRequest.agent: field 1, length-delimited
_REPORT_TAG = b"\x12"  # SubmitRequest.reports: field 2, length-delimited
_ACKED_TAG = b"\x18"  # SubmitRequest.acked_sequence: field 3, varint


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_request(agent: bytes, reports: Sequence[bytes], acked_sequence: int = 0) -> bytes:
    """The wire form of SubmitRequest(agent, reports, acked_sequence) from serialized parts."""
    parts = [_AGENT_TAG, _varint(len(agent)), agent]
    for report in reports:
        parts += [_REPORT_TAG, _varint(len(report)), report]
    if acked_sequence:  # proto3 leaves a zero out
        parts += [_ACKED_TAG, _varint(acked_sequence)]
    return b"".join(parts)


class DeliveryError(Exception):
    """Delivery failed. The tree: DeliveryError ⊃ RetryableError, PermanentError."""

    def __init__(
        self, code: grpc.StatusCode | None, message: str, retry_after: float = 0.0
    ) -> None:
        super().__init__(message)
        self.code = code
        # When the collector said to come back (a rate limit), in seconds; 0 if it did not.
        self.retry_after = retry_after


def _retry_after(error: grpc.RpcError) -> float:
    """The collector's "come back in N ms" hint, bounded to a minute; 0 without one."""
    try:
        metadata = error.trailing_metadata() or ()
    except AttributeError:  # not a call error: no metadata
        return 0.0
    for key, value in metadata:
        if key == RETRY_AFTER_KEY and str(value).isdigit():
            return min(int(value), 60_000) / 1000
    return 0.0


class RetryableError(DeliveryError):
    """The collector could not take the batch now; send it again later."""


class PermanentError(DeliveryError):
    """The collector refused the batch for good (invalid, unauthenticated, denied)."""


class Sender:
    """One gRPC channel at a time, to the first collector address that answers."""

    def __init__(
        self,
        config: CollectorConfig,
        agent: pb.AgentInfo,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if not config.insecure and credentials is None:
            raise ValueError("collector.insecure is false but no TLS credentials were given")
        self._config = config
        self._agent_bytes = agent.SerializeToString()
        self._credentials = credentials
        self._index = 0
        self._channel: grpc.Channel | None = None
        self._call: Callable[..., pb.SubmitResponse] | None = None
        self._renewed: grpc.ChannelCredentials | None = None

    @property
    def address(self) -> str:
        """The collector address in use (or next to be tried)."""
        return self._config.addresses[self._index]

    def set_credentials(self, credentials: grpc.ChannelCredentials) -> None:
        """Use renewed credentials from the next call on (safe from another thread)."""
        self._renewed = credentials

    def _channel_for_address(self) -> grpc.Channel:
        renewed, self._renewed = self._renewed, None
        if renewed is not None:
            self._credentials = renewed
            self.close()
        if self._channel is None:
            options = [("grpc.enable_retries", 0), ("grpc.keepalive_time_ms", 60_000)]
            if self._credentials is None:
                self._channel = grpc.insecure_channel(self.address, options=options)
            else:
                self._channel = grpc.secure_channel(
                    self.address, self._credentials, options=options
                )
        return self._channel

    def _submit_call(self) -> Callable[..., pb.SubmitResponse]:
        """Submit taking a ready-encoded request: spooled reports are sent as stored.

        Made once per channel, not once per batch.
        """
        channel = self._channel_for_address()
        if self._call is None:
            self._call = channel.unary_unary(
                _SUBMIT, request_serializer=None, response_deserializer=pb.SubmitResponse.FromString
            )
        return self._call

    def _next_address(self) -> None:
        self.close()
        self._index = (self._index + 1) % len(self._config.addresses)

    def submit_serialized(self, reports: Sequence[bytes], acked_sequence: int = 0) -> int:
        """Deliver serialized reports (oldest first), gzip-compressed; return the ack.

        acked_sequence is the highest any collector acknowledged before: one
        with a store of its own then knows what it lacks was taken elsewhere.
        """
        request = encode_request(self._agent_bytes, reports, acked_sequence)
        last: grpc.RpcError = grpc.RpcError()
        for _ in self._config.addresses:
            try:
                response = self._submit_call()(
                    request, timeout=self._config.timeout, compression=grpc.Compression.Gzip
                )
            except grpc.RpcError as exc:
                last = exc
                code = exc.code()
                if code not in _FAILOVER:
                    break
                log.debug("collector %s: %s; trying the next address", self.address, code)
                self._next_address()
                continue
            return int(response.acked_sequence)
        code = last.code()
        message = f"collector {self.address}: {code.name if code else 'error'}: {last.details()}"
        if code in _RETRYABLE:
            raise RetryableError(code, message, _retry_after(last))
        raise PermanentError(code, message)

    def idle(self) -> None:
        """Nothing left to send: close the channel unless [collector] keep_connection."""
        if not self._config.keep_connection:
            self.close()

    def close(self) -> None:
        self._call = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
