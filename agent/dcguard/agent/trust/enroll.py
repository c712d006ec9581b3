"""`dcguard-agent enroll`: trade a one-time token for this server's client certificate.

The key is made here and never leaves the machine; only a CSR is sent, over
TLS to the collector whose CA the operator pinned by fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import grpc

from dcguard.agent.trust.credentials import AgentTlsFiles
from dcguard.agent.trust.keys import make_key_and_csr
from dcguard.agent.trust.pinning import PinError, pinned_ca
from dcguard.common.config import parse_listen_address
from dcguard.common.pki import (
    CertificateError,
    common_name,
    load_certificate,
    verify_issued,
)
from dcguard.v1 import collector_pb2 as pb
from dcguard.v1 import collector_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_ENROLL_PORT", "EnrollError", "default_enroll_address", "enroll"]

DEFAULT_ENROLL_PORT = 4741


class CollectorEndpoint(Protocol):
    """Where the collector is ([collector] in the agent's config)."""

    @property
    def addresses(self) -> Sequence[str]: ...

    @property
    def timeout(self) -> float: ...


class EnrollingAgent(Protocol):
    """What enrollment needs of the agent's config: trust never imports the config itself."""

    @property
    def host(self) -> str: ...

    @property
    def department(self) -> str: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def collector(self) -> CollectorEndpoint: ...


class EnrollError(Exception):
    """Enrollment failed; the message says why and what to do."""


def default_enroll_address(config: EnrollingAgent) -> str:
    """The first collector address, on the enrollment port."""
    host, _ = parse_listen_address(config.collector.addresses[0])
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{DEFAULT_ENROLL_PORT}"


def enroll(config: EnrollingAgent, token: str, pin: str, address: str) -> str:
    """Enroll with the collector at address; store key, certificate and CA; return the CA pin."""
    try:
        ca_pem = pinned_ca(address, pin, config.collector.timeout)
    except PinError as exc:
        raise EnrollError(str(exc)) from None
    key_pem, csr_pem = make_key_and_csr(config.host)
    request = pb.EnrollRequest(
        token=token, host=config.host, department=config.department, csr_pem=csr_pem
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    with grpc.secure_channel(address, credentials) as channel:
        try:
            answer = pb_grpc.CollectorStub(channel).Enroll(
                request, timeout=config.collector.timeout
            )
        except grpc.RpcError as exc:
            code = exc.code()
            raise EnrollError(
                f"collector {address} refused the enrollment: "
                f"{code.name if code else 'error'}: "
                f"{exc.details()}"
            ) from None
    try:
        ca = load_certificate(ca_pem)
        cert = load_certificate(answer.certificate_pem)
        verify_issued(cert, ca, client=True)
    except CertificateError as exc:
        raise EnrollError(f"the collector returned an unusable certificate: {exc}") from None
    if common_name(cert) != config.host:
        raise EnrollError(
            f"the collector issued a certificate for {common_name(cert)!r}, not {config.host!r}"
        )
    files = AgentTlsFiles(config.state_dir)
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.store(key_pem, answer.certificate_pem, ca_pem)
    return pin
