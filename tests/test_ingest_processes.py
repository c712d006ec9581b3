"""The agent port served by ingest processes: shared port, one rate limit, crashes, shutdown.

Everything else a collector does with ingest processes (idempotent store,
garbage, trust) runs in test_ingest.py and test_trust.py against both ways
of serving the agent port; this file tries what only the processes add.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import grpc
import psutil
import pytest

from dcguard.collector.calls import Admission, RenewCall, Reply
from dcguard.collector.errors import Rejection
from dcguard.collector.identity import PeerIdentity
from dcguard.collector.ingest.frames import (
    FrameError,
    FrameSocket,
    WorkerSettings,
    decode,
    encode,
)
from dcguard.collector.limits import Limits
from dcguard.v1 import collector_pb2 as pb
from dcguard.v1 import collector_pb2_grpc as pb_grpc
from tests.submit import agent_info, make_report
from tests.support import Collector, metric, run_cli, wait_for

CONNECTIONS = 16  # with two processes, all on one: a chance of 2 ** -15


def ingest_children(collector: Collector) -> list[psutil.Process]:
    assert collector.proc is not None
    return [
        child
        for child in psutil.Process(collector.proc.pid).children()
        if "dcguard.collector.ingest.worker" in " ".join(child.cmdline())
    ]


def own_channels(address: str, count: int) -> list[grpc.Channel]:
    """Channels that are separate TCP connections (gRPC shares one by default)."""
    return [
        grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]


def call(channel: grpc.Channel, host: str, sequence: int) -> grpc.StatusCode:
    request = pb.SubmitRequest(agent=agent_info(host=host), reports=[make_report(sequence)])
    try:
        pb_grpc.CollectorStub(channel).Submit(request, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def connections_per_child(collector: Collector) -> list[int]:
    """How many established agent-port connections each ingest process holds."""
    return [
        sum(
            1
            for c in child.net_connections("tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == collector.grpc_port
        )
        for child in ingest_children(collector)
    ]


@pytest.fixture
def pooled(tmp_path: Path):
    collector = Collector(
        tmp_path / "collector",
        ingest_processes=2,
        extra_config="""
        [limits]
        rate_limit_per_second = 0.01
        rate_limit_burst = 4
        """,
    )
    collector.start()
    yield collector
    collector.stop()


def test_agents_are_spread_over_the_processes_and_each_report_is_stored_once(pooled):
    channels = own_channels(pooled.grpc_address, CONNECTIONS)
    try:
        for i, channel in enumerate(channels):
            assert call(channel, f"web{i:02d}", 1) == grpc.StatusCode.OK
            assert call(channel, f"web{i:02d}", 1) == grpc.StatusCode.OK  # again: a duplicate
        per_child = connections_per_child(pooled)
        assert len(per_child) == 2 and all(per_child), per_child  # both serve the one port
        assert sum(per_child) == CONNECTIONS
    finally:
        for channel in channels:
            channel.close()
    samples = pooled.metrics()
    for i in range(CONNECTIONS):
        assert (
            metric(
                samples,
                "dcguard_agent_reports_stored_total",
                host=f"web{i:02d}",
                department="so-tu-phap",
            )
            == 1
        )
    assert metric(samples, "dcguard_collector_reports_received_total") == 2 * CONNECTIONS
    assert metric(samples, "dcguard_collector_reports_duplicate_total") == CONNECTIONS
    assert metric(samples, "dcguard_collector_agents") == CONNECTIONS
    assert metric(samples, "dcguard_collector_ingest_processes") == 2


def test_one_agent_cannot_multiply_its_rate_limit_by_connecting_to_every_process(pooled):
    channels = own_channels(pooled.grpc_address, CONNECTIONS)
    try:
        codes = [
            call(channel, "db01", sequence) for sequence, channel in enumerate(channels, start=1)
        ]
        per_child = connections_per_child(pooled)
        assert all(per_child), f"every connection went to one process: {per_child}"
    finally:
        for channel in channels:
            channel.close()
    # The burst is 4 for the host, wherever its calls arrive.
    assert codes.count(grpc.StatusCode.OK) == 4, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == CONNECTIONS - 4
    assert (
        metric(pooled.metrics(), "dcguard_collector_reports_rejected_total", reason="rate_limited")
        == CONNECTIONS - 4
    )


def test_a_killed_ingest_process_is_replaced_and_the_agent_loses_nothing(tmp_path, make_agent):
    collector = Collector(tmp_path / "collector", ingest_processes=2)
    collector.start()
    try:
        agent = make_agent([collector.grpc_address], interval="100ms")
        agent.start()
        host = {"host": "testhost", "department": "test-dept"}

        def stored() -> float:
            return metric(collector.metrics(), "dcguard_agent_reports_stored_total", **host) or 0

        wait_for(lambda: stored() >= 5, timeout=30, message="the agent to deliver")
        for child in ingest_children(collector):
            child.send_signal(signal.SIGKILL)
        wait_for(
            lambda: (
                metric(collector.metrics(), "dcguard_collector_ingest_process_restarts_total") == 2
            ),
            timeout=30,
            message="both processes to be counted as restarted",
        )
        before = stored()
        wait_for(
            lambda: stored() >= before + 5, timeout=30, message="delivery through the new processes"
        )
        assert len(ingest_children(collector)) == 2
        assert metric(collector.metrics(), "dcguard_collector_ingest_processes") == 2
        agent.stop()
        status = agent.cli("status", "--json")
        assert status.returncode == 0, status.stderr
        samples = collector.metrics()
        assert metric(samples, "dcguard_agent_reports_lost_total", **host) == 0
        acked = int(json.loads(status.stdout)["acked_sequence"])
        assert metric(samples, "dcguard_agent_reports_stored_total", **host) == acked
        assert "exited with status -9; starting it again" in collector.log()
    finally:
        collector.stop()


def test_the_collector_killed_takes_its_ingest_processes_with_it(tmp_path):
    collector = Collector(tmp_path / "collector", ingest_processes=2)
    collector.start()
    children = ingest_children(collector)
    assert len(children) == 2
    collector.kill()
    # Left running, they would keep taking agents' connections they cannot settle.
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, alive
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", collector.grpc_port), timeout=5).close()


def test_sigterm_stops_the_processes_and_the_collector_exits_cleanly(tmp_path):
    collector = Collector(tmp_path / "collector", ingest_processes=2)
    collector.start()
    children = ingest_children(collector)
    # systemd signals the whole group: the children wait for the collector's word.
    for child in children:
        child.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert all(child.is_running() for child in children)
    assert collector.stop() == 0
    assert not any(child.is_running() for child in children)
    assert "Traceback" not in collector.log()


def test_a_taken_agent_port_is_one_line_and_leaves_no_process_behind(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: nobody may share it
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        collector = Collector(tmp_path / "collector", ingest_processes=2)
        before = {p.pid for p in psutil.process_iter()}
        result = run_cli(
            "dcguard.collector",
            "serve",
            "--config",
            str(collector.config_path),
            "--grpc-listen",
            f"127.0.0.1:{port}",
            timeout=60,
        )
    finally:
        blocker.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        f"cannot start: ingest process 0 did not start: cannot listen on 127.0.0.1:{port}"
        in result.stderr
    )
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.pid not in before
        and "dcguard.collector.ingest.worker" in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers


def test_frames_arrive_whole_and_in_order_however_the_stream_is_cut():
    ours, theirs = socket.socketpair()
    sender, receiver = FrameSocket(ours), FrameSocket(theirs)
    frames = [("big", b"x" * (3 << 20)), *(("small", i) for i in range(500)), ("end",)]
    wire = encode(frames)

    def trickle() -> None:
        # Cut anywhere: inside headers, inside bodies, several frames at once.
        offset, step = 0, 1
        while offset < len(wire):
            ours.sendall(wire[offset : offset + step])
            offset += step
            step = step * 7 % 65_537 + 1
        sender.close()

    thread = threading.Thread(target=trickle)
    thread.start()
    received: list[object] = []
    with pytest.raises(EOFError):
        for _ in range(100_000):
            received += receiver.receive()
    thread.join()
    receiver.close()
    assert received == frames


def test_every_call_value_crosses_the_channel_as_plain_data(tmp_path: Path) -> None:
    """What an ingest process and the collector exchange survives the trip; nothing else does."""
    identity = PeerIdentity("db01", "so-tu-phap")
    refused = Rejection(
        grpc.StatusCode.PERMISSION_DENIED, "permission_denied", "revoked", 0.25, identity
    )
    settings = WorkerSettings(
        "127.0.0.1:0",
        False,
        tmp_path / "tls",
        tmp_path / "collector.db",
        4 << 20,
        "info",
        "127.0.0.1:0",
        Limits(max_filesystems=7),
    )
    frames = [
        ("start", settings, 0, 1),
        ("submit", 1, Admission("ipv4:127.0.0.1:5", 12.5, 3, identity, None, b"\x00report")),
        ("submit", 2, Admission("ipv4:127.0.0.1:6", 13.0, 0, None, refused)),
        ("renew", 3, RenewCall("ipv4:127.0.0.1:7", b"csr", identity, None)),
        ("reply", 1, Reply(b"\x08\x07")),
        ("reply", 2, Reply.refusal(grpc.StatusCode.UNAVAILABLE, "later", 1.5)),
        ("stop", 2.0),
    ]
    ours, theirs = socket.socketpair()
    sender, receiver = FrameSocket(ours), FrameSocket(theirs)
    sender.send_all(frames)
    sender.close()
    received: list[tuple[object, ...]] = []
    with pytest.raises(EOFError):
        for _ in range(100):
            received += receiver.receive()
    receiver.close()
    assert received[0] == frames[0] and received[0][1].tls.enroll_listen == "127.0.0.1:0"
    assert received[1] == frames[1]
    rejection = received[2][2].rejection
    assert (
        rejection.code,
        rejection.reason,
        rejection.message,
        rejection.retry_after,
        rejection.identity,
    ) == (grpc.StatusCode.PERMISSION_DENIED, "permission_denied", "revoked", 0.25, identity)
    assert received[3:] == frames[3:]


def test_a_postgresql_store_reaches_an_ingest_process_with_its_password(tmp_path: Path):
    """An ingest process checks revocations in the shared database: DSN and password go along."""
    from dataclasses import replace

    from dcguard.collector.store import PostgresDatabase

    settings = replace(
        WorkerSettings(
            "127.0.0.1:0",
            False,
            tmp_path / "tls",
            tmp_path / "collector.db",
            4 << 20,
            "info",
            "127.0.0.1:0",
            Limits(),
        ),
        database=PostgresDatabase("host=127.0.0.1 dbname=dcguard user=dcguard", "pw"),
    )
    ours, theirs = socket.socketpair()
    sender, receiver = FrameSocket(ours), FrameSocket(theirs)
    sender.send_all([("start", settings, 0, 1)])
    sender.close()
    [(_, received, _, _)] = receiver.receive()
    receiver.close()
    assert received == settings and received.database.password == "pw"  # noqa: S105


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b'{"a": 1}',
        b'[{"b": [0, 99]}]',
        b'[{"rep": [1]}]',
        b'[{"evil": "os.system"}]',
        b"[[1, 2]]",
        b'[{"rej": ["NOT_A_CODE", "malformed", "m", 0, null]}]',
    ],
)
def test_a_garbled_frame_is_a_broken_channel_not_a_crash(header: bytes) -> None:
    with pytest.raises(FrameError):
        decode(header, len(header))
    with pytest.raises(TypeError):
        encode([("submit", 1, object())])
