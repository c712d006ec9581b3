"""Listening sockets as the ports source sees them: real sockets on this host."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from dcguard.agent.sources.ports import listening_sockets
from dcguard.agent.sources.security import listeners
from dcguard.agent.sources.security.listeners import SocketOwners, read_listeners


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
        yield {
            "listener": f"tcp/127.0.0.1/{tcp.getsockname()[1]}",
            "bound": f"udp/127.0.0.1/{udp.getsockname()[1]}",
            "client": f"udp/127.0.0.1/{client.getsockname()[1]}",
        }
    finally:
        for s in (tcp, udp, client):
            s.close()


def test_listeners_and_their_process(sockets: dict[str, str]) -> None:
    found = listening_sockets(("tcp", "udp"))
    me = psutil.Process().name()
    assert found[sockets["listener"]]["process"] == me
    assert found[sockets["bound"]] == {
        "protocol": "udp",
        "address": "127.0.0.1",
        "port": int(sockets["bound"].rsplit("/", 1)[1]),
        "process": me,
    }
    assert sockets["client"] not in found
    assert not any(key.startswith("udp") for key in listening_sockets(("tcp",)))


def test_proc_net_fallback_finds_the_same(
    sockets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
        inode = next(
            s.inode for s in read_listeners(("tcp",)) if f"{s.protocol}/{s.address}/{s.port}" == key
        )
        walks = len(owners.walks)
        again = listening_sockets(("tcp", "udp"), owners)
        assert again[key]["process"] == psutil.Process().name()
        assert inode in owners.walks[-1] and len(owners.walks) == walks + 1
        assert not owners.walks[-1] & seen
        assert again[sockets["listener"]] == first[sockets["listener"]]
    finally:
        extra.close()


def test_a_garbled_sock_diag_answer_is_refused_not_looped_on() -> None:
    # A zero-length message would never advance; a truncated one would be read past its end.
    header = listeners._NLMSG
    for data in (
        header.pack(0, 20, 2, 1, 0),
        header.pack(200, 20, 2, 1, 0) + b"\0" * 10,
        header.pack(header.size + 8, 20, 2, 1, 0) + b"\0" * 8,
    ):
        with pytest.raises(OSError):
            list(listeners._diag_messages(data, "tcp", socket.AF_INET))


def test_garbled_proc_net_lines_are_skipped(tmp_path, sockets: dict[str, str]) -> None:
    net = tmp_path / "net"
    net.mkdir()
    real = Path("/proc/net/tcp").read_text().splitlines()
    garbage = [
        "  0: zz:zz 00000000:0000 0A 0:0 0:0 0 0 0 1 x",
        "  1: 0100007F 00000000:0000 0A 0:0 0:0 0 0 0 1",
        "  2: 0100007F:1F90 nonsense 0A 0:0 0:0 0 0 0 1",
        "not even close",
        "",
        "\x00\xff",
    ]
    (net / "tcp").write_text("\n".join([real[0], *garbage, *real[1:]]) + "\n")
    found = {
        f"{s.protocol}/{s.address}/{s.port}" for s in listeners._proc_listeners(("tcp",), tmp_path)
    }
    assert sockets["listener"] in found
    assert len(found) == len({line.split()[1] for line in real[1:] if line.split()[3] == "0A"})
