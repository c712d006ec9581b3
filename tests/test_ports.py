"""ports with real sockets the test opens on 127.0.0.1: opened and closed, once each."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources import Source
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb
from tests.security_support import collect, make_source

DEADLINE = 20.0


class Ports:
    def __init__(self, tmp_path: Path, **keys: Any) -> None:
        self.tmp_path, self.keys = tmp_path, keys
        self.source = self._make()

    def _make(self) -> Source:
        return make_source("ports", self.tmp_path / "state", **{"interval": "50ms", **self.keys})

    def restart(self) -> None:
        self.source.close()
        self.source = self._make()

    def next_events(self, port: int, commit: bool = True) -> list[pb.SecurityEvent]:
        """Events about `port` (other developers' tests open ports on this machine too)."""
        collect(self.source, commit=False)
        target = self.source.scans + 2  # type: ignore[attr-defined]
        deadline = time.monotonic() + DEADLINE
        while self.source.scans < target:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "ports scan did not complete"
            time.sleep(0.02)
        return [e for e in collect(self.source, commit).events if e.port == port]


@pytest.fixture
def ports(tmp_path: Path) -> Iterator[Ports]:
    helper = Ports(tmp_path)
    yield helper
    helper.source.close()


def listen_tcp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_new_and_vanished_listener(ports: Ports) -> None:
    ports.next_events(0)  # the first scan is the baseline
    sock = listen_tcp()
    port = sock.getsockname()[1]
    try:
        events = ports.next_events(port)
        assert [(e.type, e.protocol) for e in events] == [("port_opened", "tcp")]
        assert events[0].severity == pb.SEVERITY_LOW  # loopback only
        assert events[0].details["listen_address"] == "127.0.0.1"
        assert events[0].process.startswith("python") or events[0].process.startswith("pytest")
        assert ports.next_events(port) == []  # still listening: nothing new
    finally:
        sock.close()
    assert [e.type for e in ports.next_events(port)] == ["port_closed"]


def test_udp_bound_socket_is_a_listener(ports: Ports) -> None:
    ports.next_events(0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        assert [(e.type, e.protocol) for e in ports.next_events(port)] == [("port_opened", "udp")]
    finally:
        sock.close()


def test_restart_does_not_repeat(ports: Ports) -> None:
    ports.next_events(0)
    sock = listen_tcp()
    port = sock.getsockname()[1]
    try:
        assert len(ports.next_events(port)) == 1
        ports.restart()
        assert ports.next_events(port) == []
    finally:
        sock.close()


def test_uncommitted_open_is_reported_again_after_restart(ports: Ports) -> None:
    ports.next_events(0)
    sock = listen_tcp()
    port = sock.getsockname()[1]
    try:
        assert len(ports.next_events(port, commit=False)) == 1
        ports.restart()
        assert [e.type for e in ports.next_events(port)] == ["port_opened"]
    finally:
        sock.close()


def test_tcp_only(tmp_path: Path) -> None:
    helper = Ports(tmp_path, protocols=["tcp"])
    try:
        helper.next_events(0)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        try:
            assert helper.next_events(sock.getsockname()[1]) == []
        finally:
            sock.close()
    finally:
        helper.source.close()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"protocols": ["sctp"]}, 'security.ports.protocols: must hold "tcp" and/or "udp"'),
        ({"protocols": []}, "security.ports.protocols: must not be empty"),
        ({"interval": 5}, "security.ports.interval: must be a duration"),
        ({"interval": "1ms"}, "security.ports.interval: must be at least"),
        ({"nope": 1}, "security.ports.nope: unknown key"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_source("ports", tmp_path, **keys)
