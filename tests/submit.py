"""Submitting hand-built batches to a real collector, as an agent (or an attacker) would."""

from __future__ import annotations

import time

import grpc

from dcguard.v1 import collector_pb2 as pb
from dcguard.v1 import collector_pb2_grpc as pb_grpc


def make_report(sequence: int, collected_at: float | None = None, **fields: object) -> pb.Report:
    """A report with the given sequence, stamped now (or at collected_at)."""
    report = pb.Report(sequence=sequence, **fields)  # type: ignore[arg-type]
    report.collected_at.FromNanoseconds(int((collected_at or time.time()) * 1e9))
    return report


def agent_info(
    host: str = "db01",
    department: str = "so-tu-phap",
    instance_id: str = "instance-1",
    interval: float = 15.0,
) -> pb.AgentInfo:
    return pb.AgentInfo(
        host=host,
        department=department,
        agent_version="test",
        os="Debian GNU/Linux 12",
        kernel="6.1.0",
        interval_seconds=interval,
        instance_id=instance_id,
    )


def submit(
    address: str,
    reports: list[pb.Report],
    agent: pb.AgentInfo | None = None,
    channel: grpc.Channel | None = None,
) -> pb.SubmitResponse:
    """One Submit call; raises grpc.RpcError on refusal."""
    request = pb.SubmitRequest(agent=agent or agent_info(), reports=reports)
    own = channel is None
    channel = channel or grpc.insecure_channel(address)
    try:
        return pb_grpc.CollectorStub(channel).Submit(request, timeout=10)
    finally:
        if own:
            channel.close()


def submit_raw(address: str, payload: bytes) -> grpc.StatusCode:
    """Send arbitrary bytes as a Submit request; return the status code."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/dcguard.v1.Collector/Submit", request_serializer=None, response_deserializer=None
        )
        try:
            call(payload, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK
