"""mTLS collectors, enrollment and raw gRPC clients for the trust and hostile-input tests.

Every key and certificate is made at test time in the test's tmp dir.
"""

from __future__ import annotations

import atexit
import datetime
import re
import shutil
import tempfile
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dcguard.agent.trust.keys import make_key_and_csr
from dcguard.v1 import collector_pb2 as pb
from tests.support import Agent, Collector, run_cli, wait_for

ENROLL = re.compile(r"enroll listening on (\S+):(\d+)")
TOKEN = re.compile(r"^token: (\S+)$", re.M)
FINGERPRINT = re.compile(r"^CA fingerprint: (sha256:[0-9a-f]{64})$", re.M)
# The first `ca init` of the session (at the default [tls] dir), kept to be copied:
# every later TlsCollector gets a CA of its own, made by the same command with
# the same arguments, without running it again (a process start each).
_CA_MADE: list[tuple[Path, str]] = []


def _kept_ca() -> Path:
    kept = Path(tempfile.mkdtemp(prefix="dcguard-ca-"))
    atexit.register(shutil.rmtree, kept, True)
    return kept / "tls"


class TlsCollector(Collector):
    """A collector serving mTLS on 127.0.0.1, with a CA made by `ca init`."""

    def __init__(
        self, workdir: Path, tls_extra: str = "", extra_config: str = "", ingest_processes: int = 0
    ) -> None:
        super().__init__(
            workdir,
            server_extra="insecure = false\n",
            ingest_processes=ingest_processes,
            extra_config=f'[tls]\nenroll_listen = "127.0.0.1:0"\n{tls_extra}\n{extra_config}',
        )
        self.enroll_port = 0
        if _CA_MADE and "dir =" not in tls_extra:
            made, self.fingerprint = _CA_MADE[0]
            shutil.copytree(made, self.tls_dir)
            return
        init = self.cli("ca", "init", "--name", "localhost", "--address", "127.0.0.1")
        assert init.returncode == 0, init.stderr
        self.fingerprint = FINGERPRINT.search(init.stdout).group(1)  # type: ignore[union-attr]
        if not _CA_MADE and "dir =" not in tls_extra:
            kept = _kept_ca()
            shutil.copytree(self.tls_dir, kept)
            _CA_MADE.append((kept, self.fingerprint))

    def start(self) -> None:
        seen = len(ENROLL.findall(self.log()))
        super().start()
        self.enroll_port = int(list(ENROLL.finditer(self.log()))[seen].group(2))

    @property
    def enroll_address(self) -> str:
        return f"127.0.0.1:{self.enroll_port}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    def token(self, host: str, department: str = "test-dept", ttl: str = "1h") -> str:
        result = self.cli(
            "token", "create", "--host", host, "--department", department, "--ttl", ttl
        )
        assert result.returncode == 0, result.stderr
        assert FINGERPRINT.search(result.stdout).group(1) == self.fingerprint  # type: ignore[union-attr]
        return TOKEN.search(result.stdout).group(1)  # type: ignore[union-attr]

    def rejected(self, reason: str) -> float:
        from tests.support import metric

        return (
            metric(self.metrics(), "dcguard_collector_reports_rejected_total", reason=reason) or 0.0
        )


def enroll(
    agent: Agent, collector: TlsCollector, token: str, fingerprint: str | None = None
) -> object:
    return run_cli(
        "dcguard.agent",
        "enroll",
        "--config",
        str(agent.config_path),
        "--token",
        token,
        "--ca-fingerprint",
        fingerprint or collector.fingerprint,
        "--address",
        collector.enroll_address,
    )


def agent_credentials(agent: Agent) -> tuple[bytes, bytes]:
    from dcguard.agent.trust.credentials import AgentTlsFiles

    return AgentTlsFiles(agent.state_dir).load()


def channel(
    address: str, ca_pem: bytes, key_cert: tuple[bytes, bytes] | None = None
) -> grpc.Channel:
    kwargs = {}
    if key_cert is not None:
        kwargs = {"private_key": key_cert[0], "certificate_chain": key_cert[1]}
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem, **kwargs)
    return grpc.secure_channel(address, credentials)


def good_request(
    host: str = "testhost",
    department: str = "test-dept",
    sequence: int = 1,
    instance: str = "raw-client",
) -> pb.SubmitRequest:
    report = pb.Report(sequence=sequence)
    report.collected_at.FromSeconds(int(time.time()))
    return pb.SubmitRequest(
        agent=pb.AgentInfo(
            host=host,
            department=department,
            agent_version="test",
            interval_seconds=15,
            instance_id=instance,
        ),
        reports=[report],
    )


def submit(
    ch: grpc.Channel, request: pb.SubmitRequest | bytes, timeout: float = 10.0
) -> grpc.StatusCode:
    """Send one Submit (a message or raw bytes); the status code it got."""
    data = request if isinstance(request, bytes) else request.SerializeToString()
    call = ch.unary_unary("/dcguard.v1.Collector/Submit")
    try:
        call(data, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def self_signed_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    host: str,
    *,
    department: str = "test-dept",
    server: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A (key PEM, cert PEM) signed by ca_key: client by default, or a server cert for host."""
    key_pem, _ = make_key_and_csr(host)
    key = serialization.load_pem_private_key(key_pem, password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, host)]
    if not server:
        names.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, department))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(hours=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=1))
    )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def load_ca(collector: TlsCollector) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The collector's own CA key: for tests that forge an expired but genuine certificate."""
    key = serialization.load_pem_private_key(
        (collector.tls_dir / "ca.key").read_bytes(), password=None
    )
    cert = x509.load_pem_x509_certificate((collector.tls_dir / "ca.crt").read_bytes())
    return key, cert  # type: ignore[return-value]


__all__ = [
    "TlsCollector",
    "agent_credentials",
    "channel",
    "enroll",
    "good_request",
    "issue",
    "load_ca",
    "self_signed_ca",
    "submit",
    "wait_for",
]
