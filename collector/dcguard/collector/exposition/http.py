"""The HTTP endpoint Prometheus scrapes: /metrics, plus /-/healthy and a landing page."""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Callable

from dcguard.collector.metrics_conn import BoundedHTTPServer

__all__ = ["MetricsServer"]

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LANDING = (
    b"<html><head><title>dcguard collector</title></head><body>"
    b'<h1>dcguard collector</h1><p><a href="/metrics">Metrics</a></p></body></html>'
)


# Pieces of the page are joined and encoded this many characters at a time.
_BATCH = 1 << 20


def _batches(chunks: list[str]) -> Iterator[bytes]:
    batch: list[str] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= _BATCH:
            yield "".join(batch).encode("utf-8")
            batch, size = [], 0
    if batch:
        yield "".join(batch).encode("utf-8")


def _encoded_length(chunks: list[str]) -> int:
    # isascii() reads a flag CPython keeps on every str: no scan, no copy.
    return sum(len(c) if c.isascii() else len(c.encode("utf-8")) for c in chunks)


class MetricsServer:
    """Serves render() at /metrics on its own threads.

    render() returns the page in pieces (at 10,000 hosts it is about
    250 MB): they are encoded and written, or gzip'd, a batch at a time,
    so the whole page is never held as one string or one bytes object.
    Scrapes arriving while a render runs wait for it to end and then share
    one new render (started after they arrived, so never older than the
    request): a burst of scrapes, or a client retrying after its own
    timeout, costs at most two renders instead of one per request running
    side by side.
    """

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], list[str]],
        idle_timeout: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        self._render = render
        self._render_lock = threading.Lock()  # one render at a time
        self._count_lock = threading.Lock()
        self._waiting = 0  # scrapes in _page(), the one rendering included
        # The newest render and when it started, kept while scrapes wait.
        self._last: tuple[float, list[str]] | None = None
        page = self._page

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(page(), CONTENT_TYPE)
                    return
                if path in ("/-/healthy", "/-/ready"):
                    body, content_type = b"OK\n", "text/plain"
                elif path == "/":
                    body, content_type = _LANDING, "text/html"
                else:
                    self.send_error(404)
                    return
                self._headers(content_type, len(body), None)
                self.wfile.write(body)

            def _send(self, chunks: list[str], content_type: str) -> None:
                if "gzip" in self.headers.get("Accept-Encoding", ""):
                    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
                    packed = [compressor.compress(b) for b in _batches(chunks)]
                    packed.append(compressor.flush())
                    self._headers(content_type, sum(map(len, packed)), "gzip")
                    for part in packed:
                        self.wfile.write(part)
                    return
                self._headers(content_type, _encoded_length(chunks), None)
                for batch in _batches(chunks):
                    self.wfile.write(batch)

            def _headers(self, content_type: str, length: int, encoding: str | None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(length))
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        # A request that stalls mid-way (or a reader that stops reading) is
        # dropped after the idle timeout too, so no thread waits forever.
        Handler.timeout = idle_timeout
        self._server = BoundedHTTPServer((host, port), Handler, idle_timeout, max_connections)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    def _page(self) -> list[str]:
        arrived = time.monotonic()
        with self._count_lock:
            self._waiting += 1
        with self._render_lock:
            try:
                if self._last is not None and self._last[0] >= arrived:
                    return self._last[1]
                started = time.monotonic()
                page = self._render()
                self._last = (started, page)
                return page
            finally:
                with self._count_lock:
                    self._waiting -= 1
                    if not self._waiting:
                        # Nobody queued for it: drop the page (and the
                        # fragments it holds that hosts have since replaced)
                        # once this scrape is written.
                        self._last = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
