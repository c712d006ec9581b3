"""The HTTP endpoint Prometheus scrapes: /metrics, plus /-/healthy and a landing page."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["MetricsServer"]

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LANDING = (b"<html><head><title>dcguard collector</title></head><body>"
            b"<h1>dcguard collector</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>")


class MetricsServer:
    """Serves render() at /metrics on its own threads."""

    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        render_metrics = render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = render_metrics()
                    content_type = CONTENT_TYPE
                elif path in ("/-/healthy", "/-/ready"):
                    body, content_type = b"OK\n", "text/plain"
                elif path == "/":
                    body, content_type = _LANDING, "text/html"
                else:
                    self.send_error(404)
                    return
                encoding = None
                if "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024:
                    body, encoding = gzip.compress(body, compresslevel=1), "gzip"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        server_class = type("Server", (ThreadingHTTPServer,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
            "daemon_threads": True,
        })
        self._server: ThreadingHTTPServer = server_class((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
