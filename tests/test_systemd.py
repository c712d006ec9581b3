"""systemd units verified by systemd itself, and readiness notification from the real processes."""

from __future__ import annotations

import configparser
import contextlib
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Agent, Collector, wait_for

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy/systemd"
BIN = Path(sys.executable).parent
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def installed_copy(tmp_path: Path, name: str) -> Path:
    """The unit with ExecStart at this checkout's entry points, as the installer rewrites it."""
    text = (UNITS / name).read_text()
    text = text.replace("/opt/dcguard-agent/bin/", f"{BIN}/")
    text = text.replace("/opt/dcguard-collector/bin/", f"{BIN}/")
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["dcguard-agent.service", "dcguard-collector.service"])
def test_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    assert SYSTEMD_ANALYZE, "systemd-analyze missing: apt-get install systemd (tests/run.sh does)"
    path = installed_copy(tmp_path, name)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize(
    ("name", "ceiling"), [("dcguard-agent.service", 3.0), ("dcguard-collector.service", 2.0)]
)
def test_exposure_stays_low(tmp_path: Path, name: str, ceiling: float) -> None:
    """systemd's own hardening score (0 safe .. 10 exposed); the agent needs raw disk access."""
    assert SYSTEMD_ANALYZE
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", str(installed_copy(tmp_path, name))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= ceiling


@pytest.mark.parametrize("name", ["dcguard-agent.service", "dcguard-collector.service"])
def test_units_are_hardened(name: str) -> None:
    service = unit(name)["Service"]
    user = name.removesuffix(".service")
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["User"] == user
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == f"/var/lib/{user}"
    assert service["StateDirectory"] == user


def test_agent_gets_only_what_logs_smartctl_and_the_data_watch_need() -> None:
    service = unit("dcguard-agent.service")["Service"]
    assert set(service["SupplementaryGroups"].split()) == {"adm", "systemd-journal", "disk"}
    # CAP_DAC_READ_SEARCH reads (never writes) data directories: discovery and ransomware.
    assert service["CapabilityBoundingSet"] == "CAP_SYS_RAWIO CAP_DAC_READ_SEARCH"
    assert service["AmbientCapabilities"] == "CAP_SYS_RAWIO CAP_DAC_READ_SEARCH"
    assert unit("dcguard-collector.service")["Service"]["CapabilityBoundingSet"] == ""


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's, named in $NOTIFY_SOCKET for children."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket, messages: list[str]) -> list[str]:
    with contextlib.suppress(TimeoutError):
        messages.append(sock.recv(4096).decode())
    return messages


def test_collector_tells_systemd_when_it_serves_and_stops(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    collector = Collector(tmp_path / "collector")
    messages: list[str] = []
    collector.start()
    try:
        wait_for(lambda: "READY=1" in received(notify_socket, messages), message="READY=1")
        assert "listening grpc=" in collector.log()  # ready only once it listens
    finally:
        assert collector.stop() == 0
    wait_for(lambda: "STOPPING=1" in received(notify_socket, messages), message="STOPPING=1")
    assert messages == ["READY=1", "STOPPING=1"]


def test_agent_tells_systemd_when_it_runs_and_stops(
    tmp_path: Path, collector: Collector, notify_socket: socket.socket
) -> None:
    agent = Agent(tmp_path / "agent", [collector.grpc_address])
    messages: list[str] = []
    agent.start()
    try:
        wait_for(lambda: "READY=1" in received(notify_socket, messages), message="READY=1")
    finally:
        agent.stop()
    wait_for(lambda: "STOPPING=1" in received(notify_socket, messages), message="STOPPING=1")
    assert messages == ["READY=1", "STOPPING=1"]


def test_notify_outside_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dcguard.common.systemd import notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    # A socket that does not exist must not raise: the service keeps running.
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
    assert notify("READY=1") is False


@pytest.mark.parametrize(
    ("name", "argv", "config", "message"),
    [
        (
            "dcguard-agent.service",
            ["dcguard.agent", "run"],
            '[agent]\ndepartment = "d"\nstate_dir = "{tmp}/state"\n[collector]\n'
            'addresses = ["127.0.0.1:1"]\n',
            "enroll the agent first",
        ),
        (
            "dcguard-collector.service",
            ["dcguard.collector", "serve"],
            '[server]\ndata_dir = "{tmp}/data"\ninsecure = true\ngrpc_listen = "127.0.0.1:0"\n'
            'metrics_listen = "127.0.0.1:0"\n[risk]\nbogus = 1\n',
            "risk.bogus",
        ),
    ],
)
def test_a_configuration_error_stops_the_unit_instead_of_restarting_it_forever(
    tmp_path: Path, name: str, argv: list[str], config: str, message: str
) -> None:
    """A config error exits 2 from the main process, and systemd does not restart on 2.

    RestartPreventExitStatus applies to the main process only: a failing
    ExecStartPre would be restarted every RestartSec, forever.
    """
    service = unit(name)["Service"]
    assert "2" in service.get("RestartPreventExitStatus", "").split()
    assert "ExecStartPre" not in service
    path = tmp_path / "config.toml"
    path.write_text(config.format(tmp=tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", *argv, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
