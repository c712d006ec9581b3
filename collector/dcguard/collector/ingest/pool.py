"""The collector's ingest processes, and the loop that settles what they admit.

One Python process saturates near 600 Submits a second on two cores (the
global lock serialises gRPC's own work with ours), so with
`[server] ingest_processes = N` the agent port is served by N child
processes instead (ingest/worker.py): they share the port through
SO_REUSEPORT and do the per-call work that needs no shared state. This
process keeps what must be one: the rate limits, the counters, the
database and the state behind /metrics. Its loop takes every admitted call
that has arrived, settles them together (one commit for the lot) and
sends the replies back. A child that dies is started again; its calls in
flight die with it, unacknowledged, so their agents send them again.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from dcguard.collector.calls import Admission, RenewCall, Reply
from dcguard.collector.config import ServerConfig
from dcguard.collector.ingest.frames import FrameSocket, WorkerSettings
from dcguard.collector.settle.submit import CollectorService
from dcguard.collector.trust.enroll_service import EnrollService
from dcguard.common.config import parse_listen_address

__all__ = ["IngestPool"]

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
# A child that keeps dying is started again after 1, 2, 4 … at most 30 s;
# one that ran this long before dying starts over at 1 s.
RESTART_DELAYS = (1.0, 30.0)
STABLE_AFTER = 60.0


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    channel: FrameSocket
    started_at: float
    ready: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    failure: str = ""


class IngestPool:
    """N ingest processes on the agent port, supervised; settles their calls in one loop."""

    def __init__(
        self,
        config: ServerConfig,
        count: int,
        submits: CollectorService,
        renewals: EnrollService | None,
        registry: CollectorRegistry,
    ) -> None:
        self._config = config
        self._count = count
        self._submits = submits
        self._renewals = renewals
        self._selector = selectors.DefaultSelector()
        self._children: dict[int, _Child] = {}  # by index; changed by the loop once started
        self._due: dict[int, float] = {}  # index → when to start it again
        self._failures: dict[int, int] = defaultdict(int)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.port = 0
        self._running = Gauge(
            "dcguard_collector_ingest_processes",
            "Ingest processes serving the agent port.",
            registry=registry,
        )
        self._restarts = Counter(
            "dcguard_collector_ingest_process_restarts",
            "Ingest processes that exited unasked and were started again.",
            registry=registry,
        )

    def start(self) -> int:
        """Start the processes and return the agent port once all serve it."""
        first = self._spawn(0, parse_listen_address(self._config.grpc_listen)[1])
        self.port = self._await_ready([first])
        rest = [self._spawn(index, self.port) for index in range(1, self._count)]
        self._await_ready(rest)
        self._count_running()
        self._thread = threading.Thread(target=self._loop, name="ingest", daemon=True)
        self._thread.start()
        return self.port

    def _spawn(self, index: int, port: int) -> _Child:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "dcguard.collector.ingest.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        child = _Child(index, process, FrameSocket(ours), time.monotonic())
        child.channel.send(("start", WorkerSettings.of(self._config), port, index))
        self._children[index] = child
        self._selector.register(child.channel, selectors.EVENT_READ, child)
        return child

    def _await_ready(self, children: list[_Child]) -> int:
        """Wait (before the loop runs) for each child to serve; return the port they serve."""
        deadline = time.monotonic() + START_TIMEOUT
        for child in children:
            sock = child.channel.sock
            try:
                while not child.ready.is_set():
                    sock.settimeout(max(0.1, deadline - time.monotonic()))
                    for frame in child.channel.receive():
                        self._dispatch(child, frame, [])
            except socket.timeout:
                child.failure = f"no answer in {START_TIMEOUT:.0f} s"
            except (EOFError, OSError):
                child.failure = child.failure or "it exited before serving"
            finally:
                sock.settimeout(None)
            if child.failure:
                self.stop(0)
                raise RuntimeError(f"ingest process {child.index} did not start: {child.failure}")
        return children[0].port if children else self.port

    def _loop(self) -> None:
        while not (self._stopping and not self._children):
            try:
                self._turn()
            except Exception:
                log.exception("the ingest loop failed; going on")
                time.sleep(0.1)

    def _turn(self) -> None:
        """Take every call that has arrived, settle them together, start who is due."""
        submits: list[tuple[_Child, int, Admission]] = []
        for key, _ in self._selector.select(self._wait()):
            child: _Child = key.data
            try:
                frames = child.channel.receive()
            except (EOFError, OSError):
                self._lost(child)
                continue
            for frame in frames:
                self._dispatch(child, frame, submits)
        if submits:
            self._settle(submits)
        self._start_due()

    def _dispatch(
        self, child: _Child, frame: Any, submits: list[tuple[_Child, int, Admission]]
    ) -> None:
        kind = frame[0]
        if kind == "submit":
            submits.append((child, frame[1], frame[2]))
        elif kind == "renew":
            self._reply(child, [(frame[1], self._renew(frame[2]))])
        elif kind == "ready":
            child.port = frame[1]
            child.ready.set()
            self._count_running()
        elif kind == "failed":
            child.failure = frame[1]
            child.ready.set()
            log.error("ingest process %d cannot serve: %s", child.index, frame[1])

    def _settle(self, submits: list[tuple[_Child, int, Admission]]) -> None:
        try:
            replies = self._submits.settle([admission for _, _, admission in submits])
        except Exception:
            log.exception("settling %d calls failed", len(submits))
            replies = [
                Reply.refusal(grpc.StatusCode.UNAVAILABLE, "the collector cannot store now")
            ] * len(submits)
        by_child: dict[int, tuple[_Child, list[tuple[int, Reply]]]] = {}
        for (child, call_id, _), reply in zip(submits, replies):
            by_child.setdefault(id(child), (child, []))[1].append((call_id, reply))
        for child, answers in by_child.values():
            # Call ids are a child's own: never answer its successor in its place.
            if self._children.get(child.index) is child:
                self._reply(child, answers)

    def _renew(self, call: RenewCall) -> Reply:
        if self._renewals is None:
            return Reply.refusal(grpc.StatusCode.UNIMPLEMENTED, "this collector runs without TLS")
        try:
            return self._renewals.settle_renew(call)
        except Exception:
            log.exception("renewing a certificate failed")
            return Reply.refusal(grpc.StatusCode.INTERNAL, "the renewal failed")

    def _reply(self, child: _Child, answers: list[tuple[int, Reply]]) -> None:
        # If it is gone, the EOF on its channel takes it out of the pool.
        with contextlib.suppress(OSError):
            child.channel.send_all(("reply", call_id, reply) for call_id, reply in answers)

    def _lost(self, child: _Child) -> None:
        """A child's channel closed: it stopped as asked, or died and is started again."""
        self._selector.unregister(child.channel)
        child.channel.close()
        del self._children[child.index]
        try:
            status = child.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.process.kill()
            status = child.process.wait()
        self._count_running()
        if self._stopping:
            return
        now = time.monotonic()
        if now - child.started_at >= STABLE_AFTER:
            self._failures[child.index] = 0
        delay = min(RESTART_DELAYS[0] * 2 ** self._failures[child.index], RESTART_DELAYS[1])
        self._failures[child.index] += 1
        self._restarts.inc()
        self._due[child.index] = now + delay
        log.error(
            "ingest process %d (pid %d) exited with status %s; starting it again in %.0f s",
            child.index,
            child.process.pid,
            status,
            delay,
        )

    def _count_running(self) -> None:
        self._running.set(sum(c.ready.is_set() for c in self._children.values()))

    def _wait(self) -> float:
        if not self._due:
            return 1.0
        return max(0.0, min(self._due.values()) - time.monotonic())

    def _start_due(self) -> None:
        now = time.monotonic()
        for index, at in list(self._due.items()):
            if at <= now and not self._stopping:
                del self._due[index]
                try:
                    self._spawn(index, self.port)
                except OSError as exc:
                    log.error("cannot start ingest process %d: %s", index, exc)
                    self._due[index] = now + RESTART_DELAYS[1]

    def stop(self, grace: float) -> None:
        """Stop the children: they refuse new calls, finish those in flight, and exit."""
        self._stopping = True
        self._due.clear()
        for child in list(self._children.values()):
            with contextlib.suppress(OSError):
                child.channel.send(("stop", grace))
        if self._thread is not None:
            self._thread.join(grace + 10.0)
        for child in list(self._children.values()):
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait()
            child.channel.close()
        self._children.clear()
        self._selector.close()
