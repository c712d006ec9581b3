"""An ingest process: the agent port's front half, settled by the collector process.

Started by ingest/pool.py as `python -m dcguard.collector.ingest.worker FD`,
with FD one end of a private socketpair. It serves gRPC on the agent port
(shared with its siblings through SO_REUSEPORT): TLS, parsing,
authentication and validation happen here, in parallel with the other
ingest processes; each admitted call is sent to the collector process,
which stores it and answers. The collector process decides when this one
stops: it ignores SIGTERM and SIGINT (systemd and a terminal signal the
whole group) and exits when told, or when the collector's end closes.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc

from dcguard.collector.calls import Reply, answer, raw_method
from dcguard.collector.ingest.frames import FrameSocket, WorkerSettings
from dcguard.collector.receive.admit import SubmitFront, admit_renew
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.receive.grpc_server import GrpcServer
from dcguard.collector.trust.ca import TlsFiles
from dcguard.collector.trust.registry import EnrollmentRegistry
from dcguard.common.console import setup_logging
from dcguard.common.pki import CertificateError, load_certificate

__all__ = ["IngestWorker", "main"]

log = logging.getLogger(__name__)

# The collector process is the one serial stage (every admitted call is
# settled by its loop), so it gets the CPU first: with the ingest processes
# at the same priority, the scheduler shared the cores evenly, the loop fell
# behind, and at 10,000 agents p99 Submit latency went from 24-68 ms (ingest
# processes 10 steps nicer) to 0.5-1 s (docs/performance.md).
NICENESS = 10
# A call the collector process has not answered by then is answered
# UNAVAILABLE; the agent keeps the reports and sends them again.
SETTLE_TIMEOUT = 60.0


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    reply: Reply | None = None


_GONE = Reply.refusal(grpc.StatusCode.UNAVAILABLE, "the collector is restarting")


class IngestWorker:
    """Serves Submit (and Renew with TLS) and forwards each admitted call over the channel."""

    def __init__(self, channel: FrameSocket, config: WorkerSettings) -> None:
        self._channel = channel
        self._config = config
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiter] = {}
        self._closed = False  # the channel is gone: nobody would answer a new call
        self._registry: EnrollmentRegistry | None = None
        self._server: GrpcServer | None = None

    def start(self, port: int) -> int:
        """Serve the agent port (port 0: any free one); return the port bound."""
        if self._config.insecure:
            auth = Authenticator(insecure=True)
        else:
            try:
                ca = load_certificate(TlsFiles(self._config.tls_dir).ca_cert.read_bytes())
            except (OSError, CertificateError) as exc:
                raise RuntimeError(f"cannot read the CA certificate: {exc}") from None
            self._registry = EnrollmentRegistry(self._config.database)
            self._registry.open()
            auth = Authenticator(insecure=False, ca=ca, revocations=self._registry)
        front = SubmitFront(auth, self._config.limits)

        def submit(data: bytes, context: grpc.ServicerContext) -> bytes:
            return answer(
                self._settle("submit", front.admit(data, context).for_transfer()), context
            )

        def renew(data: bytes, context: grpc.ServicerContext) -> bytes:
            return answer(self._settle("renew", admit_renew(auth, data, context)), context)

        methods = {"Submit": raw_method(submit)}
        if not self._config.insecure:
            methods["Renew"] = raw_method(renew)
        server = GrpcServer(self._config, methods)
        bound = server.bind_agent_port(port)
        server.start()
        self._server = server
        return bound

    def _settle(self, kind: str, call: object) -> Reply:
        waiter = _Waiter()
        with self._lock:
            if self._closed:
                return _GONE
            call_id = next(self._ids)
            self._waiting[call_id] = waiter
        try:
            self._channel.send((kind, call_id, call))
        except OSError:
            self._forget(call_id)
            return _GONE
        if not waiter.done.wait(SETTLE_TIMEOUT):
            self._forget(call_id)
            return Reply.refusal(
                grpc.StatusCode.UNAVAILABLE, "the collector did not answer in time"
            )
        return waiter.reply or _GONE

    def _forget(self, call_id: int) -> None:
        with self._lock:
            self._waiting.pop(call_id, None)

    def run(self) -> None:
        """Deliver the collector's replies until it says stop or goes away."""
        try:
            while True:
                for frame in self._channel.receive():
                    self._dispatch(frame)
        except (EOFError, OSError):
            pass
        finally:
            with self._lock:
                waiting, self._waiting, self._closed = self._waiting, {}, True
            for waiter in waiting.values():
                waiter.done.set()  # no reply: answered as _GONE
            if self._server is not None:
                self._server.stop(0)
            if self._registry is not None:
                self._registry.close()

    def _dispatch(self, frame: Any) -> None:
        kind = frame[0]
        if kind == "reply":
            _, call_id, reply = frame
            with self._lock:
                waiter = self._waiting.pop(call_id, None)
            if waiter is not None:
                waiter.reply = reply
                waiter.done.set()
        elif kind == "stop":
            threading.Thread(target=self._stop, args=(frame[1],), name="stop").start()

    def _stop(self, grace: float) -> None:
        """Refuse new calls, let those in flight be settled, then close the channel."""
        if self._server is not None:
            self._server.stop(grace)
        self._channel.close()


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    channel = FrameSocket(socket.socket(fileno=int(argv[1])))
    try:
        frames: list[Any] = []
        while not frames:
            frames = channel.receive()
    except (EOFError, OSError):
        return 1
    _, config, port, index = frames[0]
    setup_logging(config.log_level)
    try:
        os.nice(NICENESS)  # before gRPC starts its threads, so they all inherit it
    except OSError as exc:  # a seccomp filter without setpriority (see the systemd unit)
        log.warning(
            "cannot lower the priority of ingest process %d (%s); the collector "
            "process may fall behind under load",
            index,
            exc,
        )
    worker = IngestWorker(channel, config)
    try:
        bound = worker.start(port)
    except RuntimeError as exc:
        channel.send(("failed", str(exc)))
        return 1
    channel.send(("ready", bound))
    log.debug("ingest process %d serving port %d", index, bound)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
