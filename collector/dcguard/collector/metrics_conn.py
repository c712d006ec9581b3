"""The metrics port's HTTP server, with idle connections bounded.

http.server gives every accepted connection a thread that waits for its
request: 750 idle connections held 761 threads, forever. Here a connection
first waits in one selector thread and gets a handler thread only once its
request arrives; one that sends nothing within the idle timeout is closed,
and beyond max_connections open ones a new connection is closed at once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BoundedHTTPServer"]

log = logging.getLogger(__name__)
_REFUSED_LOG_EVERY = 60.0


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose waiting connections cost no thread and whose count is bounded."""

    daemon_threads = True
    # socketserver's listen backlog is 5: a burst of connections (many
    # Prometheus servers, or clients reconnecting at once) overflows it while
    # the accepting thread waits for a core, and the kernel drops their SYNs,
    # which clients resend only after 1, 3, 7 s. The kernel caps this at somaxconn.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        idle_timeout: float,
        max_connections: int,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self._idle_timeout = idle_timeout
        self._max = max_connections
        self._count_lock = threading.Lock()
        self._open = 0  # accepted and not yet closed, waiting or being served
        self._refused_logged = -_REFUSED_LOG_EVERY
        self._arrivals: queue.SimpleQueue[tuple[Any, Any, float]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_write.setblocking(False)
        self._stopping = threading.Event()
        self._room = threading.Thread(target=self._wait_room, name="metrics-idle", daemon=True)
        self._room.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Called on the accepting thread: park the connection until it speaks."""
        with self._count_lock:
            full = self._open >= self._max
            if not full:
                self._open += 1
        if full:
            request.close()
            now = time.monotonic()
            if now - self._refused_logged >= _REFUSED_LOG_EVERY:
                self._refused_logged = now
                log.warning(
                    "metrics port: %d connections open, the maximum "
                    "(server.metrics_max_connections); closing new ones",
                    self._max,
                )
            return
        self._arrivals.put((request, client_address, time.monotonic()))
        # A full wake buffer means the room is awake anyway.
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._count_lock:
            self._open -= 1

    def _wait_room(self) -> None:
        """Hand each parked connection to a thread when its request arrives, or close it."""
        selector = selectors.DefaultSelector()
        selector.register(self._wake_read, selectors.EVENT_READ, None)
        tick = min(1.0, self._idle_timeout / 4)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=tick):
                    if key.data is None:
                        self._wake_read.recv(4096)
                        continue
                    selector.unregister(key.fileobj)
                    # ThreadingMixIn: a handler thread, which closes it when done.
                    connection: socket.socket = key.fileobj  # type: ignore[assignment]
                    super().process_request(connection, key.data[0])
                while True:
                    try:
                        request, address, since = self._arrivals.get_nowait()
                    except queue.Empty:
                        break
                    selector.register(request, selectors.EVENT_READ, (address, since))
                deadline = time.monotonic() - self._idle_timeout
                for key in list(selector.get_map().values()):
                    if key.data is not None and key.data[1] < deadline:
                        selector.unregister(key.fileobj)
                        self.shutdown_request(key.fileobj)
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    self.shutdown_request(key.fileobj)
            selector.close()

    def server_close(self) -> None:
        self._stopping.set()
        self._room.join(5)
        super().server_close()
        self._wake_read.close()
        self._wake_write.close()
