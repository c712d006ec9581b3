"""Enroll and Renew: turning a one-time token, or a current certificate, into a certificate.

Like Submit, both take raw bytes so garbage is answered and counted rather
than failing inside gRPC. The agent's CSR carries only its public key: the
CA alone decides what the certificate says (host, department, lifetime).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry, Counter

from dcguard.collector.calls import RenewCall, Reply, answer, raw_method
from dcguard.collector.errors import Rejection
from dcguard.collector.ratelimit import RateLimiter
from dcguard.collector.receive.admit import admit_renew
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.trust.ca import CertificateAuthority
from dcguard.collector.trust.registry import EnrollmentRegistry, TokenError
from dcguard.common.names import check_name
from dcguard.common.pki import CertificateError
from dcguard.v1 import collector_pb2 as pb

__all__ = ["EnrollService"]

log = logging.getLogger(__name__)

MAX_CSR_BYTES = 16 * 1024
RESULTS = (
    "ok",
    "malformed",
    "invalid_token",
    "token_used",
    "token_expired",
    "identity_mismatch",
    "bad_csr",
    "rate_limited",
    "unauthenticated",
    "permission_denied",
)
# A token is 256 random bits, so guessing is hopeless; the limit keeps a
# flood of Enroll calls from filling the log and the CPU (EC signing).
ENROLL_RATE = (2.0, 20)

_TOKEN_STATUS = {
    "invalid_token": grpc.StatusCode.UNAUTHENTICATED,
    "token_used": grpc.StatusCode.UNAUTHENTICATED,
    "token_expired": grpc.StatusCode.UNAUTHENTICATED,
    "identity_mismatch": grpc.StatusCode.PERMISSION_DENIED,
}


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, result: str, message: str) -> None:
        super().__init__(message)
        self.code, self.result, self.message = code, result, message


class EnrollService:
    """Serves Enroll (token → certificate) and Renew (certificate → certificate)."""

    def __init__(
        self,
        ca: CertificateAuthority,
        registry: EnrollmentRegistry,
        auth: Authenticator,
        lifetime: float,
        metrics: CollectorRegistry,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._ca = ca
        self._registry = registry
        self._auth = auth
        self._lifetime = datetime.timedelta(seconds=lifetime)
        self._limiter = (
            RateLimiter(*ENROLL_RATE) if clock is None else RateLimiter(*ENROLL_RATE, clock=clock)
        )
        self.enrollments = Counter(
            "dcguard_collector_enrollments",
            "Enroll calls, by result.",
            ["result"],
            registry=metrics,
        )
        self.renewals = Counter(
            "dcguard_collector_certificate_renewals",
            "Renew calls, by result.",
            ["result"],
            registry=metrics,
        )
        for result in RESULTS:
            self.enrollments.labels(result=result)
            self.renewals.labels(result=result)

    def methods(self) -> dict[str, grpc.RpcMethodHandler]:
        """Enroll and Renew served in this process (Renew admitted here too)."""

        def renew(data: bytes, context: grpc.ServicerContext) -> bytes:
            return answer(self.settle_renew(admit_renew(self._auth, data, context)), context)

        def enroll(data: bytes, context: grpc.ServicerContext) -> bytes:
            return answer(self.enroll(context.peer(), data), context)

        return {"Enroll": raw_method(enroll), "Renew": raw_method(renew)}

    def enroll(self, peer: str, data: bytes) -> Reply:
        try:
            self._limit(peer)
            request = _parse(pb.EnrollRequest, data)
            for field in ("host", "department"):
                problem = check_name(getattr(request, field))
                if problem:
                    raise _Refused(
                        grpc.StatusCode.INVALID_ARGUMENT, "malformed", f"{field} {problem}"
                    )
            if len(request.token) > 256:
                raise _Refused(
                    grpc.StatusCode.UNAUTHENTICATED, "invalid_token", "unknown enrollment token"
                )
            self._check_csr(request.csr_pem)
            try:
                grant = self._registry.consume_token(
                    request.token, request.host, request.department
                )
            except TokenError as exc:
                raise _Refused(_TOKEN_STATUS[exc.reason], exc.reason, exc.message) from None
            pem = self._issue(request.csr_pem, grant.host, grant.department)
        except _Refused as exc:
            self.enrollments.labels(result=exc.result).inc()
            log.warning("refused an enrollment from %s: %s", peer, exc.message)
            return Reply.refusal(exc.code, exc.message)
        self.enrollments.labels(result="ok").inc()
        log.info("enrolled host %s (department %s)", grant.host, grant.department)
        return Reply(
            pb.EnrollResponse(certificate_pem=pem, ca_pem=self._ca.pem).SerializeToString()
        )

    def settle_renew(self, call: RenewCall) -> Reply:
        """The back half of Renew: limit, check the CSR, sign, record, count."""
        try:
            if call.rejection is not None or call.identity is None:
                exc = call.rejection or Rejection(
                    grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "no identity"
                )
                raise _Refused(exc.code, exc.reason, exc.message)
            identity = call.identity
            self._limit(call.peer)
            request = _parse(pb.RenewRequest, call.data)
            self._check_csr(request.csr_pem)
            pem = self._issue(request.csr_pem, identity.host, identity.department)
        except _Refused as exc:
            self.renewals.labels(result=exc.result).inc()
            log.warning("refused a renewal from %s: %s", call.peer, exc.message)
            return Reply.refusal(exc.code, exc.message)
        self.renewals.labels(result="ok").inc()
        log.info("renewed the certificate of host %s", identity.host)
        return Reply(pb.RenewResponse(certificate_pem=pem, ca_pem=self._ca.pem).SerializeToString())

    def _limit(self, peer: str) -> None:
        address = peer.rsplit(":", 1)[0]  # without the port
        try:
            self._limiter.check(address)
        except Rejection as exc:
            raise _Refused(exc.code, "rate_limited", exc.message) from None

    @staticmethod
    def _check_csr(csr_pem: bytes) -> None:
        """Refuse a bad CSR before the token is spent on it."""
        if not csr_pem or len(csr_pem) > MAX_CSR_BYTES:
            raise _Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "bad_csr",
                f"csr_pem must be 1..{MAX_CSR_BYTES} bytes",
            )
        try:
            valid = x509.load_pem_x509_csr(csr_pem).is_signature_valid
        except ValueError:
            valid = False
        if not valid:
            raise _Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "bad_csr",
                "csr_pem is not a validly signed PEM certificate request",
            )

    def _issue(self, csr_pem: bytes, host: str, department: str) -> bytes:
        try:
            cert = self._ca.issue(csr_pem, host, department, self._lifetime)
        except CertificateError as exc:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "bad_csr", str(exc)) from None
        self._registry.record_certificate(
            cert.serial_number, host, department, cert.not_valid_after_utc.timestamp()
        )
        return cert.public_bytes(serialization.Encoding.PEM)


def _parse(kind: Any, data: bytes) -> Any:
    message = kind()
    try:
        message.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise _Refused(
            grpc.StatusCode.INVALID_ARGUMENT, "malformed", f"not a {kind.__name__}"
        ) from None
    return message
