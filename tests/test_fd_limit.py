"""A collector started with a low open-files limit still takes one connection per agent.

Every agent holds a connection, and a connection is a file descriptor.
systemd's unit sets LimitNOFILE, but a collector started by hand, from a
shell or a container runtime, often inherits a soft limit of 1,024: past
about a thousand agents it could not accept another connection, and the
agents beyond would see UNAVAILABLE while those already in were fine. The
collector raises its soft limit to the hard one at start, as Go programs
(Prometheus, node_exporter) do, and logs what it has.
"""

from __future__ import annotations

import grpc

from tests.support import Collector
from tests.trust_support import good_request

AGENTS = 120  # well past the soft limit below, well under the hard one
SOFT, HARD = 64, 4096


def test_a_low_soft_limit_is_raised_and_every_agent_connection_is_served(tmp_path):
    collector = Collector(tmp_path)
    collector.wrapper = ["prlimit", f"--nofile={SOFT}:{HARD}", "--"]
    collector.start()
    channels = [
        grpc.insecure_channel(
            collector.grpc_address, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(AGENTS)
    ]
    try:
        calls = [
            c.unary_unary("/dcguard.v1.Collector/Submit").future(
                good_request(host=f"host{i:03d}").SerializeToString(), timeout=15
            )
            for i, c in enumerate(channels)
        ]
        codes = [call.code() for call in calls]  # every call ends by its deadline
        assert codes.count(grpc.StatusCode.OK) == AGENTS, {c.name: codes.count(c) for c in codes}
        # The log says what the collector has, so an operator sees it at start.
        assert f"open files limit {HARD}:" in collector.log(), collector.log()[-2000:]
    finally:
        for c in channels:
            c.close()
        collector.stop()
