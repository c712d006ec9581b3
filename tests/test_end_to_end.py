"""Agent and collector as real processes on 127.0.0.1: what an operator sees on /metrics."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.support import metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}


def test_agent_appears_up_with_this_machines_root_filesystem(collector, make_agent):
    agent = make_agent([collector.grpc_address])
    agent.start()

    samples = wait_for(
        lambda: (s := collector.metrics()) and metric(s, "dcguard_agent_up", **HOST) == 1 and s,
        message="the agent to be up on /metrics",
    )

    root = os.statvfs("/")
    size = metric(samples, "dcguard_filesystem_size_bytes", mountpoint="/", **HOST)
    assert size == root.f_blocks * root.f_frsize
    assert metric(samples, "dcguard_host_memory_total_bytes", **HOST) > 0
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0
    info = [labels for (name, labels) in samples if name == "dcguard_agent_info"]
    assert dict(info[0])["agent_version"]


def test_killed_agent_goes_down_and_last_seen_stays_put(collector, make_agent):
    agent = make_agent([collector.grpc_address], interval="200ms")
    agent.start()
    wait_for(
        lambda: metric(collector.metrics(), "dcguard_agent_up", **HOST) == 1, message="agent up"
    )
    agent.kill()
    time.sleep(0.3)  # let a report already in flight land
    last_seen = metric(collector.metrics(), "dcguard_agent_last_seen_timestamp_seconds", **HOST)

    # Staleness window: 3 intervals of 200 ms.
    wait_for(
        lambda: metric(collector.metrics(), "dcguard_agent_up", **HOST) == 0,
        timeout=5,
        message="agent down",
    )
    time.sleep(0.5)
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_up", **HOST) == 0
    assert metric(samples, "dcguard_agent_last_seen_timestamp_seconds", **HOST) == last_seen


def test_restarted_collector_shows_the_same_hosts_before_any_new_report(collector, make_agent):
    agent = make_agent([collector.grpc_address])
    agent.start()
    wait_for(
        lambda: (
            (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0) >= 3
        ),
        message="three reports stored",
    )
    agent.stop()
    before = collector.metrics()
    collector.stop()
    collector.start()
    after = collector.metrics()

    # Clock-dependent series may change while the collector is down: the agent
    # stopped, so it is down and silent now.
    live = {"dcguard_agent_up", "dcguard_data_loss_risk_score", "dcguard_data_loss_risk"}
    host_series = {
        key: value
        for key, value in before.items()
        if ("host", "testhost") in key[1] and key[0] not in live
    }
    assert host_series, "no per-host series before the restart"
    for key, value in host_series.items():
        assert after.get(key) == value, f"{key[0]} changed across the restart"


def test_agent_restart_continues_the_sequence_without_gaps_or_duplicates(collector, make_agent):
    agent = make_agent([collector.grpc_address])
    agent.start()
    wait_for(
        lambda: (
            (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0) >= 2
        ),
        message="reports stored",
    )
    agent.stop()
    stored = metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST)
    agent.start()
    wait_for(
        lambda: (
            metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) >= stored + 2
        ),
        message="more reports after the restart",
    )
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0
    assert metric(samples, "dcguard_collector_reports_duplicate_total") == 0


@pytest.mark.parametrize("ingest_processes", [0, 2], ids=["in-process", "ingest-processes"])
def test_metrics_pass_promtool_check(collector, make_agent):
    agent = make_agent([collector.grpc_address])
    agent.start()
    wait_for(
        lambda: metric(collector.metrics(), "dcguard_agent_up", **HOST) == 1, message="agent up"
    )
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=collector.metrics_text(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_agents_command_lists_the_host(collector, make_agent):
    agent = make_agent([collector.grpc_address])
    agent.start()
    wait_for(
        lambda: metric(collector.metrics(), "dcguard_agent_up", **HOST) == 1, message="agent up"
    )
    result = collector.cli("agents", "--json")
    assert result.returncode == 0, result.stderr
    import json

    rows = json.loads(result.stdout)
    assert [(r["host"], r["department"], r["up"]) for r in rows] == [
        ("testhost", "test-dept", True)
    ]
    table = collector.cli("agents")
    assert "testhost" in table.stdout and "yes" in table.stdout


def test_agent_status_reports_sequences_and_a_reachable_collector(collector, make_agent):
    agent = make_agent([collector.grpc_address])
    agent.start()
    wait_for(
        lambda: (
            (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0) >= 2
        ),
        message="two reports stored",
    )
    result = agent.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    import json

    status = json.loads(result.stdout)
    assert status["acked_sequence"] >= 2
    assert status["last_sequence"] >= status["acked_sequence"]
    assert status["collectors"] == {collector.grpc_address: "reachable"}
    agent.stop()
    collector.stop()
    status = json.loads(agent.cli("status", "--json").stdout)
    assert status["collectors"][collector.grpc_address].startswith("unreachable")
