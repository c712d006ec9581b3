"""Idle connections to the metrics port cannot exhaust the collector.

Before: every idle connection held a thread forever (750 → 761 threads).
Now an idle connection costs no thread, is closed after
[server] metrics_idle_timeout, and at most metrics_max_connections are open.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support import Collector, wait_for


@pytest.fixture
def strict_collector(tmp_path: Path) -> Iterator[Collector]:
    process = Collector(
        tmp_path / "collector",
        server_extra='insecure = true\nmetrics_idle_timeout = "2s"\n'
        "metrics_max_connections = 400\n",
    )
    process.start()
    yield process
    process.stop()


def _threads(collector: Collector) -> int:
    assert collector.proc is not None
    status = Path(f"/proc/{collector.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, socket.timeout):
        return False
    except OSError:
        return True


def _scrape(collector: Collector) -> bool:
    """One scrape; False when the collector still counts the clients that just left
    (it closes a connection over its maximum at once), so the caller tries again."""
    try:
        with urllib.request.urlopen(collector.metrics_url, timeout=5) as response:
            return b"dcguard_collector_reports_received_total" in response.read()
    except (ConnectionError, urllib.error.URLError):
        return False


def test_idle_connections_hold_no_thread_and_are_closed_after_the_timeout(
    strict_collector: Collector,
) -> None:
    baseline = _threads(strict_collector)
    with ExitStack() as stack:
        idle = []
        slowest = 0.0
        for _ in range(300):
            began = time.monotonic()
            sock = stack.enter_context(
                socket.create_connection(("127.0.0.1", strict_collector.metrics_port), timeout=5)
            )
            slowest = max(slowest, time.monotonic() - began)
            idle.append(sock)
        # The kernel completes a connection the listen queue has room for at once; one
        # that overflowed it has its SYN dropped and resent after 1 s (then 3, 7 s).
        assert slowest < 1.0, (
            f"a burst of 300 connections overflowed the listen queue ({slowest:.1f} s)"
        )
        time.sleep(0.5)
        assert _threads(strict_collector) <= baseline + 4
        started = time.monotonic()
        assert _scrape(strict_collector)  # Prometheus still gets through
        wait_for(
            lambda: all(_closed_by_server(s) for s in idle),
            timeout=10,
            message="the idle connections to be closed",
        )
        assert time.monotonic() - started >= 1.0  # not before the idle timeout
    assert _scrape(strict_collector)


def test_connections_beyond_the_maximum_are_closed_at_once(tmp_path: Path) -> None:
    collector = Collector(
        tmp_path / "collector",
        server_extra='insecure = true\nmetrics_idle_timeout = "30s"\n'
        "metrics_max_connections = 20\n",
    )
    collector.start()
    try:
        baseline = _threads(collector)
        with ExitStack() as stack:
            socks = [
                stack.enter_context(
                    socket.create_connection(("127.0.0.1", collector.metrics_port), timeout=5)
                )
                for _ in range(60)
            ]
            wait_for(
                lambda: sum(_closed_by_server(s) for s in socks) >= 40,
                timeout=10,
                message="the connections over the maximum to be closed",
            )
            assert _threads(collector) <= baseline + 4
        # The idle ones are gone once their clients leave: scrapes work again.
        wait_for(lambda: _scrape(collector), timeout=10, message="a scrape to succeed")
    finally:
        collector.stop()
