"""Building the collector's gRPC servers: options, health and ports in one place.

The collector process and its ingest processes (ingest/worker.py) serve the
agent port the same way; only the collector serves the enrollment port.
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dcguard.collector.calls import SERVICE_NAME
from dcguard.collector.trust.ca import TlsFiles
from dcguard.common.config import parse_listen_address
from dcguard.common.pki import CertificateError

__all__ = ["GrpcServer", "GrpcSettings", "listen_target"]


class _EnrollSettings(Protocol):
    @property
    def enroll_listen(self) -> str: ...


class GrpcSettings(Protocol):
    """What the gRPC servers need of [server] and [tls]; the collector's ServerConfig has it."""

    @property
    def grpc_listen(self) -> str: ...

    @property
    def insecure(self) -> bool: ...

    @property
    def tls_dir(self) -> Path: ...

    @property
    def max_message_bytes(self) -> int: ...

    @property
    def tls(self) -> _EnrollSettings: ...


class GrpcServer:
    """A gRPC server with the Collector methods given, health, and the ports bound on it."""

    def __init__(self, config: GrpcSettings, methods: dict[str, grpc.RpcMethodHandler]) -> None:
        self._config = config
        size = config.max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="grpc"),
            handlers=[grpc.method_handlers_generic_handler(SERVICE_NAME, methods)],
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
            ],
        )
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self.server)

    def bind_agent_port(self, port: int | None = None) -> int:
        """Bind grpc_listen (on `port` instead of its own if given): mutual TLS unless insecure.

        Ingest processes bind the same port: gRPC sets SO_REUSEPORT, so the
        kernel spreads the agents' connections over them.
        """
        target = listen_target(self._config.grpc_listen, port)
        try:
            if self._config.insecure:
                return int(self.server.add_insecure_port(target))
            files = TlsFiles(self._config.tls_dir)
            mutual = grpc.ssl_server_credentials(
                [self._server_pair(files)],
                root_certificates=files.ca_cert.read_bytes(),
                require_client_auth=True,
            )
            return int(self.server.add_secure_port(target, mutual))
        except OSError as exc:
            raise RuntimeError(f"cannot read the CA certificate: {exc}") from None
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise RuntimeError(f"cannot listen on {target}: {exc}") from None

    def bind_enroll_port(self) -> int:
        """The enrollment port: TLS that asks no client certificate (the agent has none yet).

        grpc-python either requires and verifies a client certificate or never
        asks for one, so Enroll gets its own port. Submit and Renew there are
        refused as unauthenticated by receive/auth.py: there is never a client
        certificate on it.
        """
        target = listen_target(self._config.tls.enroll_listen)
        enroll = grpc.ssl_server_credentials(
            [self._server_pair(TlsFiles(self._config.tls_dir))], require_client_auth=False
        )
        try:
            return int(self.server.add_secure_port(target, enroll))
        except RuntimeError as exc:
            raise RuntimeError(f"cannot listen on {target}: {exc}") from None

    @staticmethod
    def _server_pair(files: TlsFiles) -> tuple[bytes, bytes]:
        try:
            return files.server_credentials()
        except (OSError, CertificateError) as exc:
            raise RuntimeError(f"cannot read the server certificate: {exc}") from None

    def start(self) -> None:
        self.server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Refuse new calls now; return once calls in flight finished (or grace ran out)."""
        self.server.stop(grace).wait()


def listen_target(listen: str, port: int | None = None) -> str:
    """host:port as gRPC binds it ([host]:port for IPv6)."""
    host, own_port = parse_listen_address(listen)
    port = own_port if port is None else port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
