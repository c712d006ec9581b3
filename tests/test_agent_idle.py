"""Between reports the agent sleeps: no gRPC thread is left waking (issue 15).

An open gRPC channel keeps grpc's EventEngine threads (event_engine workers,
grpc_global_timer, lifeguard) alive, and they wake ~10-15 times a second
even with nothing to send: at a 15 s interval that cost more CPU than the
reports themselves. The agent closes its channel once the spool is empty,
which ends those threads; docs/performance.md has the measurements.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import Collector, metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}
GRPC_THREADS = ("event_engine", "grpc_global_tim", "lifeguard")


def grpc_threads(pid: int) -> list[str]:
    """Names of the process's threads that belong to grpc's core."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except FileNotFoundError:  # the thread ended while we looked
            continue
        if name.startswith(GRPC_THREADS):
            names.append(name)
    return names


def stored(collector: Collector) -> float:
    return metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0


def test_between_reports_the_agent_has_no_grpc_thread_and_keeps_delivering(collector, make_agent):
    agent = make_agent([collector.grpc_address], interval="3s")
    agent.start()
    assert agent.proc is not None
    wait_for(lambda: stored(collector) >= 1, timeout=30, message="a first report")
    # Within the 3 s gap after a delivery, grpc's threads are gone.
    wait_for(
        lambda: not grpc_threads(agent.proc.pid),  # type: ignore[union-attr]
        timeout=2.5,
        interval=0.05,
        message="grpc's threads to end after the spool drained",
    )
    before = stored(collector)
    # The next reports still go out: the channel is opened again when one is spooled.
    wait_for(lambda: stored(collector) >= before + 2, timeout=20, message="two more reports")
    assert metric(collector.metrics(), "dcguard_agent_reports_lost_total", **HOST) in (None, 0)


def sockets(pid: int) -> set[str]:
    """The socket inodes the process holds open (its connection to the collector among them)."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except FileNotFoundError:  # closed while we looked
            continue
        if str(target).startswith("socket:"):
            found.add(str(target))
    return found


def test_keep_connection_holds_one_connection_across_reports(collector, make_agent):
    """keep_connection = true: for a collector whose CPU is the limit, no handshake per report."""
    agent = make_agent(
        [collector.grpc_address], interval="1s", extra_config="keep_connection = true\n"
    )
    agent.start()
    assert agent.proc is not None
    pid = agent.proc.pid
    wait_for(lambda: stored(collector) >= 1, timeout=30, message="a first report")
    held = sockets(pid)
    assert held, "the agent holds no socket after delivering"
    assert grpc_threads(pid), "grpc's threads ended: the channel was closed"
    before = stored(collector)
    wait_for(lambda: stored(collector) >= before + 3, timeout=20, message="three more reports")
    assert held & sockets(pid), "every socket changed: the agent reconnected between reports"
