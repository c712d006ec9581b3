"""Delivery through outages and crashes, with real agent and collector processes on 127.0.0.1.

What a user checks after each: dcguard_agent_reports_stored_total equals the
number of sequences sent, dcguard_agent_reports_lost_total is 0 (or equals
what the agent says it dropped), and nothing was applied twice.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from dcguard.agent.config import load_config
from dcguard.agent.cycle.report_builder import agent_info, build_report
from dcguard.agent.delivery.loop import Backoff, Delivery
from dcguard.agent.delivery.sender import Sender
from dcguard.agent.delivery.spool import Spool
from dcguard.agent.state_dir import AgentState
from tests.support import Agent, Collector, metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}


@pytest.fixture
def down_collector(tmp_path: Path, ingest_processes: int) -> Iterator[Callable[[str], Collector]]:
    """Collectors that have run once (so their ports are known) and are now down."""
    made: list[Collector] = []

    def make(name: str = "collector", extra_config: str = "") -> Collector:
        collector = Collector(
            tmp_path / name, extra_config=extra_config, ingest_processes=ingest_processes
        )
        made.append(collector)
        collector.start()
        collector.stop()
        return collector

    yield make
    for collector in made:
        collector.stop()


def status(agent: Agent) -> dict[str, Any]:
    result = agent.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def host_metric(collector: Collector, name: str) -> float:
    return metric(collector.metrics(), name, **HOST) or 0


def prefill(agent: Agent, count: int) -> int:
    """Spool count reports the way `run` does (build_report + Spool.append); return the last."""
    config = load_config(agent.config_path)
    state = AgentState(config.state_dir)
    state.open()
    spool = Spool(state.spool_dir, config.spool)
    spool.open()
    for _ in range(count):
        spool.append(build_report(config.sources, spool.next_sequence()))
    config.close_sources()
    return spool.last_sequence


def drained(agent: Agent, collector: Collector) -> dict[str, Any] | None:
    """The agent's status once its spool is empty and the collector holds its last report."""
    current = status(agent)
    if current["spool_reports"] or not current["last_sequence"]:
        return None
    stored = host_metric(collector, "dcguard_agent_reports_stored_total")
    lost = host_metric(collector, "dcguard_agent_reports_lost_total")
    return current if stored + lost >= current["last_sequence"] else None


def assert_exactly_once(collector: Collector, agent: Agent, lost: int = 0) -> dict[str, Any]:
    """Every sequence the (stopped) agent made is stored once, counted lost, or still spooled."""
    final = status(agent)
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == lost
    stored = metric(samples, "dcguard_agent_reports_stored_total", **HOST)
    assert stored == final["acked_sequence"] - lost
    assert final["spool_reports"] == final["last_sequence"] - final["acked_sequence"]
    return final


@pytest.mark.parametrize("ingest_processes", [0, 2], ids=["in-process", "ingest-processes"])
def test_collector_killed_mid_backlog_every_sequence_is_stored_once(down_collector, make_agent):
    # Tiny batches make hundreds of calls; the rate limit is not what this tests.
    collector = down_collector(
        extra_config="[limits]\nrate_limit_per_second = 1000\nrate_limit_burst = 1000\n"
    )
    agent = make_agent(
        [collector.grpc_address], interval="50ms", extra_config="[spool]\nbatch_max_reports = 2\n"
    )
    prefill(agent, 1500)
    agent.start()
    collector.start()
    # Kill it while the backlog is partly delivered (small batches: hundreds of calls).
    wait_for(
        lambda: host_metric(collector, "dcguard_agent_reports_stored_total") >= 20,
        timeout=30,
        message="part of the backlog stored",
    )
    collector.kill()
    assert status(agent)["spool_reports"] > 0, "backlog drained before the kill; test is void"
    collector.start()
    wait_for(lambda: drained(agent, collector), timeout=60, message="the backlog to drain")
    agent.stop()
    assert_exactly_once(collector, agent)


def test_agent_killed_between_spooling_and_ack_loses_and_repeats_nothing(
    down_collector, make_agent
):
    collector = down_collector()
    agent = make_agent([collector.grpc_address], interval="50ms")
    agent.start()
    wait_for(lambda: status(agent)["spool_reports"] >= 10, message="reports spooled")
    agent.kill()
    spooled = status(agent)
    assert spooled["acked_sequence"] == 0 and spooled["spool_reports"] == spooled["last_sequence"]

    collector.start()
    agent.start()
    wait_for(
        lambda: (
            host_metric(collector, "dcguard_agent_reports_stored_total") > spooled["last_sequence"]
        ),
        message="the spooled reports and newer ones",
    )
    agent.stop()
    assert_exactly_once(collector, agent)
    assert metric(collector.metrics(), "dcguard_collector_reports_duplicate_total") == 0


def test_long_outage_backlog_drains_completely_and_in_order(down_collector, make_agent):
    collector = down_collector()
    agent = make_agent([collector.grpc_address], interval="1s")
    backlog = prefill(agent, 3000)
    assert status(agent)["spool_reports"] == 3000
    agent.start()
    wait_for(lambda: "delivery failing" in agent.log(), message="the outage noticed")
    collector.start()
    started = time.monotonic()
    final = wait_for(
        lambda: drained(agent, collector),
        timeout=120,
        interval=0.2,
        message="3000 reports to drain",
    )
    elapsed = time.monotonic() - started
    print(
        f"\ndrained {backlog} reports in {elapsed:.1f}s ({backlog / elapsed:.0f} reports/s,"
        f" upper bound on the time: includes reconnect backoff and polling)"
    )
    # In order: an older sequence after a newer one would be a duplicate at the collector.
    assert metric(collector.metrics(), "dcguard_collector_reports_duplicate_total") == 0
    agent.stop()
    assert_exactly_once(collector, agent)
    assert final["last_sequence"] >= backlog
    assert "delivery recovered" in agent.log()


def test_spool_bound_drops_oldest_and_the_collector_sees_the_count(down_collector, make_agent):
    collector = down_collector()
    agent = make_agent(
        [collector.grpc_address], interval="50ms", extra_config='[spool]\nmax_age = "1s"\n'
    )
    agent.start()
    wait_for(lambda: status(agent)["dropped_total"] >= 10, message="the age bound to drop")
    collector.start()

    def counted() -> tuple[float, float] | None:
        dropped = host_metric(collector, "dcguard_agent_spool_dropped_reports_total")
        lost = host_metric(collector, "dcguard_agent_reports_lost_total")
        return (dropped, lost) if dropped >= 10 and dropped == lost else None

    dropped, _ = wait_for(counted, message="the drop count at the collector")
    agent.stop()
    final = assert_exactly_once(collector, agent, lost=int(dropped))
    assert final["dropped_total"] == dropped
    assert agent.log().count("spool bound reached") == 1  # once per episode


def test_torn_spool_record_is_skipped_and_the_agent_keeps_going(down_collector, make_agent):
    collector = down_collector()
    agent = make_agent([collector.grpc_address], interval="50ms")
    last = prefill(agent, 20)
    segment = sorted((agent.state_dir / "spool").glob("*.seg"))[-1]
    with open(segment, "r+b") as handle:  # a crash in the middle of the last write
        handle.truncate(segment.stat().st_size - 9)
    collector.start()
    agent.start()
    wait_for(
        lambda: host_metric(collector, "dcguard_agent_reports_stored_total") >= last + 5,
        message="reports after the torn one",
    )
    assert "torn or corrupt" in agent.log()
    agent.stop()
    # The torn report is the one loss, counted; its sequence is not handed out again.
    assert_exactly_once(collector, agent, lost=1)


def prefill_with_bad(agent: Agent, count: int, bad: set[int]) -> None:
    """Spool count reports; those in bad are ones the collector refuses (INVALID_ARGUMENT)."""
    config = load_config(agent.config_path)
    AgentState(config.state_dir).open()
    spool = Spool(config.state_dir / "spool", config.spool)
    spool.open()
    for sequence in range(1, count + 1):
        report = build_report(config.sources, sequence)
        if sequence in bad:  # the collector refuses duplicate mountpoints
            report.filesystems.add(mountpoint="/dup")
            report.filesystems.add(mountpoint="/dup")
        spool.append(report)
    config.close_sources()


def test_a_report_the_collector_refuses_is_isolated_dropped_and_counted(down_collector, make_agent):
    collector = down_collector()
    agent = make_agent([collector.grpc_address], interval="1s")
    prefill_with_bad(agent, 40, {23})
    collector.start()
    agent.start()
    wait_for(
        lambda: host_metric(collector, "dcguard_agent_reports_stored_total") >= 42,
        message="the good reports and newer ones",
    )
    agent.stop()
    final = assert_exactly_once(collector, agent, lost=1)
    assert final["rejected_total"] == 1
    assert "refused report 23 for good" in agent.log()
    assert (
        metric(
            collector.metrics(), "dcguard_collector_reports_rejected_total", reason="invalid_report"
        )
        >= 1
    )


def test_when_the_collector_refuses_every_report_the_agent_stops_dropping(
    down_collector, make_agent
):
    collector = down_collector()
    agent = make_agent([collector.grpc_address], interval="200ms")
    prefill_with_bad(agent, 8, set(range(1, 9)))
    collector.start()
    agent.start()
    wait_for(lambda: "refuses every report" in agent.log(), message="the agent to hold")
    held = status(agent)
    assert held["rejected_total"] == 3  # MAX_REFUSED_IN_A_ROW, then nothing more
    assert held["spool_reports"] >= 5
    assert held["delivery_failing"]
    assert host_metric(collector, "dcguard_agent_reports_stored_total") == 0


def test_status_while_running_and_failover_to_the_second_address(
    tmp_path, down_collector, make_agent
):
    dead = down_collector("dead")
    collector = Collector(tmp_path / "live")
    collector.start()
    agent = make_agent([dead.grpc_address, collector.grpc_address], interval="100ms")
    agent.start()
    wait_for(
        lambda: host_metric(collector, "dcguard_agent_reports_stored_total") >= 3,
        message="reports via the second address",
    )
    current = wait_for(
        lambda: (s := status(agent))["collector_in_use"] == collector.grpc_address and s,
        message="status naming the live address",
    )
    assert current["collectors"][collector.grpc_address] == "reachable"
    assert current["collectors"][dead.grpc_address].startswith("unreachable")
    assert current["acked_sequence"] >= 3
    assert current["last_sequence"] >= current["acked_sequence"]
    assert current["spool_bytes"] >= 0 and current["dropped_total"] == 0
    text = agent.cli("status")
    assert text.returncode == 0 and f"{collector.grpc_address}: reachable (in use)" in (text.stdout)
    assert agent.running
    collector.stop()


def test_status_shows_the_oldest_unsent_report_during_an_outage(down_collector, make_agent):
    collector = down_collector()
    agent = make_agent([collector.grpc_address], interval="50ms")
    agent.start()
    current = wait_for(
        lambda: (s := status(agent))["spool_reports"] >= 3 and s, message="reports spooled"
    )
    assert current["oldest_unsent"].endswith("Z")
    assert current["collectors"][collector.grpc_address].startswith("unreachable")
    # SIGTERM cuts the backoff short: a clean exit, not a kill after the timeout.
    assert agent.stop() == 0


def test_a_second_runner_on_the_same_state_dir_is_refused(tmp_path, make_agent, collector):
    agent = make_agent([collector.grpc_address])
    agent.start()
    wait_for(lambda: status(agent)["last_sequence"] >= 1, message="first report")
    second = agent.cli("run")
    assert second.returncode == 2
    assert "another dcguard-agent is running" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("seed", range(5))
def test_backoff_doubles_with_jitter_and_is_capped_at_a_minute(seed):
    backoff = Backoff(initial=1.0, maximum=60.0, rng=random.Random(seed).random)  # noqa: S311
    delays = [backoff.next_delay() for _ in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_status_before_the_first_run_shows_an_empty_spool(tmp_path, make_agent):
    agent = make_agent(["127.0.0.1:9"])
    current = status(agent)
    assert (current["spool_reports"], current["last_sequence"], current["acked_sequence"]) == (
        0,
        0,
        0,
    )
    assert current["oldest_unsent"] is None
    assert not agent.state_dir.exists()  # status changes nothing


def test_unusable_state_dir_is_one_line_for_run_and_status(tmp_path, make_agent):
    agent = make_agent(["127.0.0.1:9"])
    agent.state_dir.write_text("not a directory")
    for command in ("status", "run"):
        result = agent.cli(command)
        assert result.returncode == 2, (command, result.stderr)
        assert "state_dir" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_stop_cuts_a_long_backoff_short(tmp_path, make_agent):
    agent = make_agent(["127.0.0.1:9"])  # discard port: nothing listens
    prefill(agent, 3)
    config = load_config(agent.config_path)
    spool = Spool(agent.state_dir / "spool", config.spool)
    spool.open()
    sender = Sender(config.collector, agent_info(config, "test"))
    stop = threading.Event()
    backoff = Backoff(initial=600.0)  # ten minutes, far beyond the join below
    delivery = Delivery(spool, sender, config.spool, stop, backoff=backoff)
    delivery.start()
    wait_for(lambda: backoff.failures >= 1, message="the first failed attempt")
    stop.set()
    delivery.join(timeout=10)
    assert not delivery.is_alive()
    assert len(spool) == 3  # nothing lost by stopping
    sender.close()


def test_a_throttled_agent_drains_its_backlog_at_the_pace_the_collector_names(
    down_collector, make_agent
):
    collector = down_collector(
        extra_config="[limits]\nrate_limit_per_second = 10\nrate_limit_burst = 2\n"
    )
    agent = make_agent(
        [collector.grpc_address], interval="1s", extra_config="[spool]\nbatch_max_reports = 5\n"
    )
    prefill(agent, 200)
    collector.start()
    agent.start()
    # 40 calls at 10/s: a few seconds when the agent waits as told, far longer
    # if it fell into its exponential backoff (up to a minute per refusal).
    wait_for(lambda: drained(agent, collector), timeout=60, message="the backlog to drain")
    agent.stop()
    assert_exactly_once(collector, agent)
    samples = collector.metrics()
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason="rate_limited") > 0
    assert "delivery failing" not in agent.log(), "throttling is not a delivery failure"


def test_after_a_power_cut_acknowledged_reports_come_again_as_duplicates_and_none_is_lost(
    down_collector, make_agent
):
    collector = down_collector()
    collector.start()
    agent = make_agent([collector.grpc_address], interval="50ms")
    agent.start()
    wait_for(lambda: status(agent)["acked_sequence"] >= 5, message="reports acknowledged")
    agent.stop()
    position = agent.state_dir / "spool" / "position"
    older = position.read_bytes()  # what the disk may still hold after the cut below
    agent.start()
    wait_for(lambda: status(agent)["acked_sequence"] >= 30, message="more acknowledged")
    agent.kill()
    before = status(agent)
    # The power cut: the acknowledgements since `older` were never fsynced.
    position.write_bytes(older)
    after_cut = status(agent)
    assert after_cut["acked_sequence"] < before["acked_sequence"]
    assert after_cut["last_sequence"] == before["last_sequence"]  # the records keep it

    agent.start()
    wait_for(
        lambda: (
            host_metric(collector, "dcguard_agent_reports_stored_total")
            > before["last_sequence"] + 5
        ),
        message="the spooled reports and newer ones",
    )
    agent.stop()
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0
    # Sent again (the collector holds them): dropped as duplicates, counted.
    assert metric(samples, "dcguard_collector_reports_duplicate_total") >= (
        before["acked_sequence"] - after_cut["acked_sequence"]
    )
    assert_exactly_once(collector, agent)
