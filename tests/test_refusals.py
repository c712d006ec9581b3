"""Reports the collector will not take: refused for good, counted, never retried forever.

A refusal for a report's content is INVALID_ARGUMENT (the agent drops that
one report and moves on); only a condition that passes (a locked or full
database, an I/O error) is UNAVAILABLE, which the agent retries.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import grpc
import pytest

from dcguard.collector.config import load_config
from dcguard.collector.exposition.families.agent import AgentGroup
from dcguard.collector.exposition.families.registry import HostRenderer
from dcguard.collector.exposition.hosts import StateCache
from dcguard.collector.receive.admit import SubmitFront
from dcguard.collector.receive.auth import Authenticator
from dcguard.collector.selfmetrics import SelfMetrics
from dcguard.collector.server import CollectorServer
from dcguard.collector.settle.submit import CollectorService
from dcguard.collector.store import AgentRecord, Transaction
from dcguard.collector.store.sqlite import SqliteStore as Store
from dcguard.collector.store.sqlite.reports import MAX_SEQUENCE_JUMP
from dcguard.collector.store.sqlite.schema import AGENTS_SCHEMA
from dcguard.v1 import collector_pb2 as pb
from tests.submit import agent_info, make_report, submit
from tests.support import Collector, metric, parse_metrics, wait_for

DB01 = {"host": "db01", "department": "so-tu-phap"}


def _refused(address: str, sequence: int) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        submit(address, [make_report(sequence)])
    return refused.value


def test_implausible_sequences_are_refused_for_good_and_counted(collector: Collector) -> None:
    submit(collector.grpc_address, [make_report(1)])
    for sequence in (2**64 - 1, 2**63, 2**63 - 1, 1 + MAX_SEQUENCE_JUMP + 1):
        error = _refused(collector.grpc_address, sequence)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (sequence, error.details())
        assert "sequence" in (error.details() or "")
    samples = collector.metrics()
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason="invalid_report") == 4
    assert (
        metric(samples, "dcguard_agent_reports_rejected_total", reason="invalid_report", **DB01)
        == 4
    )
    # Nothing of them was applied: no lost reports, and the host carries on.
    assert metric(samples, "dcguard_agent_reports_lost_total", **DB01) == 0
    assert submit(collector.grpc_address, [make_report(2)]).acked_sequence == 2
    # A gap within the bound is an outage's worth of lost reports, and is taken.
    far = 2 + MAX_SEQUENCE_JUMP
    assert submit(collector.grpc_address, [make_report(far)]).acked_sequence == far
    assert (
        metric(collector.metrics(), "dcguard_agent_reports_lost_total", **DB01)
        == MAX_SEQUENCE_JUMP - 1
    )


class PoisonedBy:
    """A hook that cannot handle one report: raises for a marked mountpoint, like a bug would."""

    def on_stored(self, tx: Transaction, host: str, report: pb.Report) -> None:
        for fs in report.filesystems:
            if fs.mountpoint == "/poison":
                raise ValueError("cannot handle /poison")
            if fs.mountpoint == "/locked":
                raise sqlite3.OperationalError("database is locked")


class Peer:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"


def test_a_report_that_makes_a_hook_raise_is_refused_for_good_a_locked_database_is_not(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "c.db", migrations=(AGENTS_SCHEMA,), hooks=[PoisonedBy()])
    store.open()
    metrics = SelfMetrics()
    back = CollectorService(store, StateCache(HostRenderer([])), metrics)
    front = SubmitFront(Authenticator(insecure=True))

    def settle(sequence: int, mountpoint: str | None = None) -> grpc.StatusCode | int:
        report = make_report(sequence)
        if mountpoint:
            report.filesystems.add(mountpoint=mountpoint)
        data = pb.SubmitRequest(agent=agent_info(), reports=[report]).SerializeToString()
        reply = back.settle([front.admit(data, Peer())])[0]  # type: ignore[arg-type]
        if reply.code is not None:
            return reply.code
        return int(pb.SubmitResponse.FromString(reply.payload).acked_sequence)

    assert settle(1) == 1
    assert settle(2, "/poison") == grpc.StatusCode.INVALID_ARGUMENT
    assert settle(3, "/locked") == grpc.StatusCode.UNAVAILABLE
    assert settle(3) == 3  # the agent moved on; nothing stored of 2
    sample = metrics.registry.get_sample_value
    assert sample("dcguard_collector_reports_rejected_total", {"reason": "unstorable"}) == 1
    assert sample("dcguard_agent_reports_rejected_total", {**DB01, "reason": "unstorable"}) == 1
    row = (
        sqlite3.connect(tmp_path / "c.db")
        .execute("SELECT max_sequence, reports_stored, reports_lost FROM agents")
        .fetchone()
    )
    assert row == (3, 2, 1)
    store.close()


def test_a_really_locked_database_is_answered_unavailable(collector: Collector) -> None:
    """Another writer holding the database past the busy timeout: not the report's fault."""
    submit(collector.grpc_address, [make_report(1)])
    holder = sqlite3.connect(collector.data_dir / "collector.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(grpc.RpcError) as refused:
            submit(collector.grpc_address, [make_report(2)])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert submit(collector.grpc_address, [make_report(2)]).acked_sequence == 2
    assert (
        metric(collector.metrics(), "dcguard_collector_reports_rejected_total", reason="unstorable")
        == 0
    )


def test_a_real_agent_drops_a_poison_report_and_delivers_the_ones_behind_it(
    tmp_path: Path, make_agent
) -> None:
    """A real agent against a collector on 127.0.0.1 whose store cannot handle one report.

    The fault is injected as a store hook of an in-process collector (no
    input exists that makes a real hook raise); everything else is real: the
    agent process, gRPC, SQLite, the agent's isolation of the refused report.
    """
    config = tmp_path / "collector.toml"
    config.write_text(
        '[server]\ngrpc_listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n'
        f'data_dir = "{tmp_path / "data"}"\ninsecure = true\n'
    )
    server = CollectorServer(load_config(config))
    server.store._hooks = (*server.store._hooks, PoisonedBy())
    server.start()
    try:
        (tmp_path / "srv").mkdir()
        good = f"/dev/sda1 {tmp_path / 'srv'} ext4 rw 0 0\n"
        mounts = tmp_path / "mounts"
        mounts.write_text(good)
        agent = make_agent(
            [f"127.0.0.1:{server.grpc_port}"],
            interval="500ms",
            extra_config=f'[filesystem]\nmounts_file = "{mounts}"\n',
        )
        agent.start()
        host = {"host": "testhost", "department": "test-dept"}

        def sample(name: str, **labels: str) -> float:
            return server.metrics.registry.get_sample_value(name, labels) or 0.0

        def stored() -> float:
            return (
                metric(
                    parse_metrics(server.render_metrics().decode()),
                    "dcguard_agent_reports_stored_total",
                    **host,
                )
                or 0
            )

        wait_for(lambda: stored() >= 2, timeout=30, message="reports before the poison")
        mounts.write_text(good + "/dev/sdz1 /poison ext4 rw 0 0\n")
        wait_for(
            lambda: sample("dcguard_collector_reports_rejected_total", reason="unstorable") >= 1,
            timeout=30,
            message="the poison report to be refused",
        )
        mounts.write_text(good)
        after = stored()
        wait_for(
            lambda: stored() >= after + 5,
            timeout=30,
            message="the reports behind it to be delivered",
        )
        refused = sample("dcguard_collector_reports_rejected_total", reason="unstorable")
        assert (
            sample("dcguard_agent_reports_rejected_total", reason="unstorable", **host) == refused
        )
        assert sample("dcguard_collector_reports_rejected_total", reason="invalid_report") == 0
        shown = json.loads(agent.cli("status", "--json").stdout)
        assert shown["rejected_total"] == refused  # counted on both sides
        assert shown["delivery_failing"] is None
        assert (
            metric(
                parse_metrics(server.render_metrics().decode()),
                "dcguard_agent_reports_lost_total",
                **host,
            )
            == refused
        )
        assert "refused report" in agent.log()
    finally:
        server.stop()


class BreaksOn:
    """A metric group that cannot render one host, as a bug would."""

    live_families: tuple[object, ...] = ()
    families: tuple[object, ...] = ()

    def __init__(self, host: str) -> None:
        self.host = host

    def key(self, record: object) -> None:
        return None

    def render(self, record: AgentRecord, add: object) -> None:
        if record.host == self.host:
            raise ValueError("cannot render")

    def render_live(self, record: object, now: float, add: object) -> None:
        pass


def test_a_host_that_cannot_be_rendered_neither_fails_its_call_nor_the_collector_start(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "c.db")
    store.open()
    renderer = HostRenderer([AgentGroup(3), BreaksOn("bad")])  # type: ignore[list-item]
    back = CollectorService(store, StateCache(renderer), SelfMetrics())
    front = SubmitFront(Authenticator(insecure=True))
    for host in ("good", "bad"):
        data = pb.SubmitRequest(
            agent=agent_info(host=host), reports=[make_report(1)]
        ).SerializeToString()
        reply = back.settle([front.admit(data, Peer())])[0]  # type: ignore[arg-type]
        assert reply.code is None  # stored; an acknowledgement, not a retry forever
    restarted = StateCache(renderer)
    restarted.load(store.agents())  # a restart with the bad host stored does not fail
    assert "good" in restarted.render(0.0) and 'host="bad"' not in restarted.render(0.0)
    store.close()
