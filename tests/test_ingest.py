"""The collector's idempotent store, exercised over real gRPC on 127.0.0.1."""

from __future__ import annotations

import grpc
import pytest

from tests.submit import agent_info, make_report, submit, submit_raw
from tests.support import metric

HOST = {"host": "db01", "department": "so-tu-phap"}


@pytest.fixture(params=[0, 2], ids=["in-process", "ingest-processes"])
def ingest_processes(request):
    """Every test here runs against both ways of serving the agent port."""
    return request.param


def test_the_same_batch_twice_is_stored_once(collector):
    batch = [make_report(1), make_report(2), make_report(3)]
    assert submit(collector.grpc_address, batch).acked_sequence == 3
    assert submit(collector.grpc_address, batch).acked_sequence == 3

    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_reports_stored_total", **HOST) == 3
    assert metric(samples, "dcguard_collector_reports_duplicate_total") == 3
    assert metric(samples, "dcguard_collector_reports_received_total") == 6
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0


def test_an_older_sequence_arriving_late_is_acknowledged_not_applied(collector):
    submit(collector.grpc_address, [make_report(5)])
    late = make_report(4)
    late.filesystems.add(mountpoint="/stale", device="/dev/x", fstype="ext4", size_bytes=1)
    assert submit(collector.grpc_address, [late]).acked_sequence == 5
    samples = collector.metrics()
    assert metric(samples, "dcguard_filesystem_size_bytes", mountpoint="/stale") is None
    assert metric(samples, "dcguard_collector_reports_duplicate_total") == 1


def test_gaps_in_sequences_are_counted_as_lost(collector):
    submit(collector.grpc_address, [make_report(1), make_report(2)])
    submit(collector.grpc_address, [make_report(6)])
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 3
    assert metric(samples, "dcguard_agent_reports_stored_total", **HOST) == 3


def test_a_reinstalled_agent_starts_counting_again(collector):
    submit(collector.grpc_address, [make_report(1), make_report(2), make_report(3)])
    fresh = agent_info(instance_id="instance-2")
    assert submit(collector.grpc_address, [make_report(1)], fresh).acked_sequence == 1
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_reports_stored_total", **HOST) == 4
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x12\x80\x80"])
def test_garbage_bytes_are_refused_counted_and_harmless(collector, payload):
    assert submit_raw(collector.grpc_address, payload) == grpc.StatusCode.INVALID_ARGUMENT
    assert submit(collector.grpc_address, [make_report(1)]).acked_sequence == 1
    samples = collector.metrics()
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason="malformed") == 1


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ('evil"} 1\ndcguard_agent_up{host="x', "invalid_identity"),
        ("", "invalid_identity"),
    ],
)
def test_identities_that_could_break_the_exposition_are_refused(collector, host, reason):
    with pytest.raises(grpc.RpcError) as refused:
        submit(collector.grpc_address, [make_report(1)], agent_info(host=host))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    samples = collector.metrics()
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason=reason) == 1
    assert metric(samples, "dcguard_collector_agents") == 0


def test_duplicate_mountpoints_are_refused_so_the_scrape_stays_valid(collector):
    report = make_report(1)
    for _ in range(2):
        report.filesystems.add(mountpoint="/", device="/dev/sda1", fstype="ext4")
    with pytest.raises(grpc.RpcError) as refused:
        submit(collector.grpc_address, [report])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metric(collector.metrics(), "dcguard_collector_agents") == 0
