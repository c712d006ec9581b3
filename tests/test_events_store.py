"""Event storage in a real collector process: exactly once, validated, counted, pruned."""

from __future__ import annotations

import subprocess
import time

import grpc
import pytest

from dcguard.v1 import collector_pb2 as pb
from tests.security_helpers import FakeAgent, event, failures, stored_events
from tests.support import Collector, metric, wait_for

HOST = {"host": "web01", "department": "so-tu-phap"}


@pytest.fixture
def agent(collector):
    a = FakeAgent(collector.grpc_address)
    yield a
    a.close()


def _events_total(collector: Collector, **labels: str) -> float | None:
    return metric(collector.metrics(), "dcguard_security_events_total", **HOST, **labels)


def test_a_resent_batch_stores_each_event_once(collector, agent):
    now = time.time() - 30
    first = agent.report([event("sudo_command", now, user="alice", command="/bin/ls")])
    second = agent.report(failures("198.51.100.1", now, 3))
    assert agent.submit(first).acked_sequence == 1
    # The ack was lost: the agent resends the first report with the next one, then all again.
    assert agent.submit(first, second).acked_sequence == 2
    assert agent.submit(first, second).acked_sequence == 2
    rows = stored_events(collector.data_dir / "collector.db")
    assert sorted(r["type"] for r in rows) == ["ssh_login_failed"] * 3 + ["sudo_command"]
    assert [r["details"] for r in rows if r["type"] == "sudo_command"] == [{"command": "/bin/ls"}]
    assert _events_total(collector, type="ssh_login_failed", severity="low") == 3
    assert _events_total(collector, type="sudo_command", severity="info") == 1


def test_counters_never_go_backwards_across_a_restart(collector, agent):
    agent.send(failures("198.51.100.1", time.time() - 30, 4))
    before = _events_total(collector, type="ssh_login_failed", severity="low")
    collector.stop()
    collector.start()
    assert _events_total(collector, type="ssh_login_failed", severity="low") == before == 4


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: setattr(e, "type", "Bad Type"), "invalid_report"),
        (lambda e: setattr(e, "type", 'x"}\nfake_metric 1'), "invalid_report"),
        (lambda e: setattr(e, "type", "t" * 65), "invalid_report"),
        (lambda e: setattr(e, "severity", 9), "invalid_report"),
        (lambda e: setattr(e, "technique", "T1110; drop"), "invalid_report"),
        (lambda e: setattr(e, "raw", "x" * 4097), "too_large"),
        (lambda e: e.details.update({"k": "v" * 5000}), "too_large"),
        (lambda e: setattr(e, "port", 70000), "invalid_report"),
    ],
)
def test_malformed_events_are_a_counted_rejection_and_nothing_is_stored(
    collector, agent, mutate, reason
):
    bad = event("ssh_login_failed", time.time(), source_address="198.51.100.1")
    mutate(bad)
    with pytest.raises(grpc.RpcError) as info:
        agent.send([event("sudo_command", time.time()), bad])
    assert info.value.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert stored_events(collector.data_dir / "collector.db") == []
    samples = collector.metrics()
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason=reason) == 1


def test_an_implausible_event_time_keeps_the_event_at_the_report_time(collector, agent):
    bad = event("ssh_login_failed", 0, source_address="198.51.100.1")
    future = event("sudo_command", time.time() + 300 * 86400, user="alice")  # a wrong year
    report = agent.send([bad, future])
    rows = stored_events(collector.data_dir / "collector.db")
    collected = report.collected_at.ToNanoseconds() / 1e9
    assert [r["event_time"] for r in rows] == [pytest.approx(collected)] * 2
    assert all("time_adjusted" in str(r["tags"]) for r in rows)
    assert rows[0]["details"]["original_time"] in ("0.000", f"{future.time.seconds:.3f}")


def test_too_many_events_in_one_report_is_refused(collector, agent):
    many = [event("port_opened", time.time(), port=i % 65536) for i in range(10001)]
    with pytest.raises(grpc.RpcError) as info:
        agent.send(many)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_agent_security_stats_are_per_host_counters(collector, agent):
    stats = pb.SecurityStats(
        lines_read=120, lines_unrecognised=7, lines_oversized=2, events_deferred=1
    )
    agent.send([], stats=stats)
    samples = collector.metrics()
    assert metric(samples, "dcguard_security_agent_lines_unrecognised_total", **HOST) == 7
    assert metric(samples, "dcguard_security_agent_lines_oversized_total", **HOST) == 2
    assert metric(samples, "dcguard_security_agent_lines_read_total", **HOST) == 120


def test_metrics_pass_promtool_and_carry_no_addresses_or_users(collector, agent, tmp_path):
    now = time.time() - 60
    agent.send(
        [
            *failures("203.0.113.77", now, 9, user='weird"user\nname'),
            event("user_created", now, user="mallory", groups="sudo"),
        ],
        stats=pb.SecurityStats(lines_read=1),
    )
    text = collector.metrics_text()
    assert "203.0.113.77" not in text and "mallory" not in text and "weird" not in text
    assert (
        'dcguard_security_detections_total{host="web01",department="so-tu-phap",'
        'detection="brute_force"} 1' in text
    )
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_old_events_are_pruned_but_counters_stay(tmp_path):
    collector = Collector(
        tmp_path / "c", extra_config='[events]\nretention = "1h"\nprune_interval = "1s"\n'
    )
    collector.start()
    agent = FakeAgent(collector.grpc_address)
    try:
        agent.send(
            failures("198.51.100.1", time.time() - 7200, 2)
            + failures("198.51.100.1", time.time() - 60, 1)
        )
        database = collector.data_dir / "collector.db"
        wait_for(lambda: len(stored_events(database)) == 1, message="old events pruned")
        assert _events_total(collector, type="ssh_login_failed", severity="low") == 3
        samples = collector.metrics()
        assert metric(samples, "dcguard_collector_events_pruned_total") == 2
    finally:
        agent.close()
        collector.stop()


def test_retention_never_deletes_what_the_siem_has_not_received(tmp_path):
    # The forward file's directory does not exist: every write fails.
    collector = Collector(
        tmp_path / "c",
        extra_config=f'''
        [events]
        retention = "1h"
        prune_interval = "1s"
        [forward.file]
        path = "{tmp_path / "missing" / "events.jsonl"}"
        ''',
    )
    collector.start()
    agent = FakeAgent(collector.grpc_address)
    try:
        agent.send(failures("198.51.100.1", time.time() - 7200, 2))
        wait_for(
            lambda: (
                (
                    metric(
                        collector.metrics(),
                        "dcguard_collector_events_forward_failed_total",
                        destination="file",
                    )
                    or 0
                )
                >= 2
            ),
            message="a failed write",
        )
        time.sleep(1.5)  # at least one prune pass (interval 1 s) has run
        assert len(stored_events(collector.data_dir / "collector.db")) == 2
        (tmp_path / "missing").mkdir()
        wait_for(
            lambda: len(stored_events(collector.data_dir / "collector.db")) == 0,
            timeout=90,
            message="pruned once forwarded",
        )
        lines = (tmp_path / "missing" / "events.jsonl").read_text().splitlines()
        assert len(lines) == 2
    finally:
        agent.close()
        collector.stop()


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('[events]\nretention = "forever"', "events.retention: not a duration"),
        ('[events]\nretention = "10m"', "events.retention: must be at least"),
        ("[events]\nretention = 90", "events.retention: must be a duration"),
        ('[events]\nprune_interval = ""', "events.prune_interval"),
        ("[events]\nkeep = 1", "events.keep: unknown key"),
    ],
)
def test_events_config_garbage_is_one_line(tmp_path, snippet, expected):
    from dcguard.collector.config import load_config
    from dcguard.common.config import ConfigError

    path = tmp_path / "collector.toml"
    path.write_text(snippet + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_failing_detection_rule_does_not_lose_the_events(tmp_path):
    import uuid

    from dcguard.collector.identity import PeerIdentity
    from dcguard.collector.security.storage import EventHook
    from dcguard.collector.store import report_store

    class Broken:
        def judge(self, tx, event):
            raise ValueError("a bug")

    store = report_store(tmp_path / "c.db", hooks=[EventHook([Broken()])])
    store.open()
    try:
        report = pb.Report(sequence=1, events=failures("198.51.100.1", time.time(), 2))
        report.collected_at.FromNanoseconds(time.time_ns())
        agent = pb.AgentInfo(
            host="web01", department="d", interval_seconds=15, instance_id=uuid.uuid4().hex
        )
        result = store.apply(PeerIdentity("web01", "d"), agent, [report], time.time())
        assert result.stored == 1
        assert len(stored_events(tmp_path / "c.db")) == 2
    finally:
        store.close()
