"""What the collector checks of a client certificate on every call of a long-lived connection.

An agent holds one mTLS connection and calls Submit on it every 15 s; TLS
checked its certificate once, in the handshake. The collector checks it
again per call (auth.py). The CA's signature on a given certificate cannot
change, so it is checked once per certificate, not once per call (an ECDSA
verification is about 0.3 ms: a tenth of what a report costs the collector
at 10,000 agents); what can change between two calls on the same connection
is checked every time: expiry and revocation.

A real gRPC server over real TLS, with the collector's own CA (init_ca) and
registry (SQLite), in this process so the test can count the verifications
and move the clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from dcguard.agent.trust.keys import make_key_and_csr
from dcguard.collector.errors import Rejection
from dcguard.collector.receive import auth as auth_module
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.store import report_store
from dcguard.collector.trust.ca import CertificateAuthority, TlsFiles, init_ca
from dcguard.collector.trust.registry import EnrollmentRegistry

LIFETIME = datetime.timedelta(days=1)
NOW = datetime.datetime.now(datetime.timezone.utc)


class _Peer:
    """A TLS peer whose certificate each call is judged at a moment the test chooses."""

    def __init__(self, tmp: Path) -> None:
        files = TlsFiles(tmp / "tls")
        init_ca(files, ["localhost"], ["127.0.0.1"])
        self.ca = CertificateAuthority(files)
        database = tmp / "collector.db"
        store = report_store(database)
        store.open()
        store.close()
        self.registry = EnrollmentRegistry(database)
        self.registry.open()
        self.auth = Authenticator(insecure=False, ca=self.ca.cert, revocations=self.registry)
        self.moment = NOW
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(self._identify)
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Peer", {"Identify": handler})]
        )
        credentials = grpc.ssl_server_credentials(
            [files.server_credentials()],
            root_certificates=files.ca_cert.read_bytes(),
            require_client_auth=True,
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()

    def _identify(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            identity = self.auth.certificate_identity(context, now=self.moment)
        except Rejection as exc:
            context.abort(exc.code, str(exc))
        return identity.host.encode()

    def enroll(self, host: str) -> tuple[bytes, bytes]:
        """A key and a recorded certificate, as enrollment leaves them on an agent."""
        key_pem, csr_pem = make_key_and_csr(host)
        cert = self.ca.issue(csr_pem, host, "test-dept", LIFETIME)
        self.registry.record_certificate(
            cert.serial_number, host, "test-dept", cert.not_valid_after_utc.timestamp()
        )
        return key_pem, cert.public_bytes(serialization.Encoding.PEM)

    def channel(self, key_cert: tuple[bytes, bytes]) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.pem, private_key=key_cert[0], certificate_chain=key_cert[1]
        )
        return grpc.secure_channel(f"127.0.0.1:{self.port}", credentials)

    def close(self) -> None:
        self.server.stop(None).wait()
        self.registry.close()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[_Peer]:
    served = _Peer(tmp_path)
    yield served
    served.close()


def _call(channel: grpc.Channel) -> Any:
    try:
        return channel.unary_unary("/test.Peer/Identify")(b"", timeout=10)
    except grpc.RpcError as exc:
        return exc.code()


def test_the_signature_is_checked_once_per_certificate_not_per_call(peer, monkeypatch):
    checked: list[str] = []
    real = auth_module.verify_issued

    def counting(cert: Any, ca: Any, **kwargs: Any) -> None:
        checked.append(cert.subject.rfc4514_string())
        real(cert, ca, **kwargs)

    monkeypatch.setattr(auth_module, "verify_issued", counting)
    db01, db02 = peer.enroll("db01"), peer.enroll("db02")
    with peer.channel(db01) as one, peer.channel(db02) as two:
        assert [_call(one) for _ in range(3)] == [b"db01"] * 3
        assert [_call(two) for _ in range(2)] == [b"db02"] * 2
        assert _call(one) == b"db01"
    assert len(checked) == 2, checked


def test_a_certificate_that_expires_on_an_open_connection_is_refused_from_its_next_call(peer):
    with peer.channel(peer.enroll("db01")) as held:
        assert _call(held) == b"db01"
        peer.moment = NOW + LIFETIME + datetime.timedelta(minutes=1)
        assert _call(held) == grpc.StatusCode.UNAUTHENTICATED
        peer.moment = NOW - datetime.timedelta(hours=1)  # a clock set back: not valid yet
        assert _call(held) == grpc.StatusCode.UNAUTHENTICATED
        peer.moment = NOW
        assert _call(held) == b"db01"


def test_a_certificate_revoked_on_an_open_connection_is_refused_from_its_next_call(peer):
    with peer.channel(peer.enroll("db01")) as held:
        assert _call(held) == b"db01"
        assert peer.registry.revoke_host("db01") == 1
        assert _call(held) == grpc.StatusCode.PERMISSION_DENIED
