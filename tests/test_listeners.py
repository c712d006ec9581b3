"""Listening sockets as the ports source sees them: real sockets on this host."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psutil
import pytest

from dcguard.agent.security import listeners
from dcguard.agent.security.listeners import SocketOwners, read_listeners
from dcguard.agent.sources.ports import listening_sockets


@pytest.fixture
def sockets() -> Iterator[dict[str, str]]:
    """A TCP listener, a bound UDP socket and a connected UDP socket; keys of the listeners."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(("127.0.0.1", 9))
    try:
        yield {"listener": f"tcp/127.0.0.1/{tcp.getsockname()[1]}",
               "bound": f"udp/127.0.0.1/{udp.getsockname()[1]}",
               "client": f"udp/127.0.0.1/{client.getsockname()[1]}"}
    finally:
        for s in (tcp, udp, client):
            s.close()


def test_listeners_and_their_process(sockets: dict[str, str]) -> None:
    found = listening_sockets(("tcp", "udp"))
    me = psutil.Process().name()
    assert found[sockets["listener"]]["process"] == me
    assert found[sockets["bound"]] == {"protocol": "udp", "address": "127.0.0.1",
                                       "port": int(sockets["bound"].rsplit("/", 1)[1]),
                                       "process": me}
    assert sockets["client"] not in found
    assert not any(key.startswith("udp") for key in listening_sockets(("tcp",)))


def test_proc_net_fallback_finds_the_same(sockets: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from_diag = read_listeners(("tcp", "udp"))

    def refused(_: tuple[str, ...]) -> Iterator[listeners.Listener]:
        raise PermissionError("netlink refused")
        yield  # a generator, like the real one

    monkeypatch.setattr(listeners, "_diag_listeners", refused)
    assert set(read_listeners(("tcp", "udp"))) == set(from_diag)


class CountingOwners(SocketOwners):
    def __init__(self) -> None:
        super().__init__()
        self.walks: list[set[str]] = []

    def _walk(self, wanted: set[str]) -> dict[str, str]:
        self.walks.append(set(wanted))
        return super()._walk(wanted)


def test_owners_are_looked_up_only_for_new_sockets(sockets: dict[str, str]) -> None:
    # Other processes on the host may open sockets meanwhile: only what was seen counts.
    owners = CountingOwners()
    seen = {s.inode for s in read_listeners(("tcp", "udp"))}
    first = listening_sockets(("tcp", "udp"), owners)
    seen |= set().union(*owners.walks)
    listening_sockets(("tcp", "udp"), owners)
    assert all(not walk & seen for walk in owners.walks[1:]), "a known socket looked up again"
    extra = socket.socket()
    extra.bind(("127.0.0.1", 0))
    extra.listen()
    try:
        key = f"tcp/127.0.0.1/{extra.getsockname()[1]}"
        inode = next(s.inode for s in read_listeners(("tcp",))
                     if f"{s.protocol}/{s.address}/{s.port}" == key)
        walks = len(owners.walks)
        again = listening_sockets(("tcp", "udp"), owners)
        assert again[key]["process"] == psutil.Process().name()
        assert inode in owners.walks[-1] and len(owners.walks) == walks + 1
        assert not owners.walks[-1] & seen
        assert again[sockets["listener"]] == first[sockets["listener"]]
    finally:
        extra.close()
