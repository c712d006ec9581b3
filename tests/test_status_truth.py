"""`dcguard-agent status` says what is true now, after a full state directory.

A real agent whose state directory is a 16 MiB tmpfs, filled to the last
byte while the collector is down, then the collector comes back while the
directory is still full, then space is freed.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from tests.mounts import tmpfs
from tests.support import Agent, Collector, metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}


def _status(agent: Agent) -> dict[str, Any]:
    result = agent.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _fill(directory: Path) -> Path:
    """Write zeros until the filesystem has no byte left."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 64, 1):
            try:
                while handle.write(b"\0" * size):
                    pass
            except OSError:
                continue
    return filler


def test_after_a_full_state_directory_status_shows_no_stale_alarm(
    tmp_path: Path, make_agent
) -> None:
    collector = Collector(tmp_path / "collector")
    collector.start()
    collector.stop()  # its ports are known now; it is down
    with tmpfs(tmp_path / "state-fs") as mount:
        agent = make_agent([collector.grpc_address], interval="200ms")
        agent.state_dir = mount / "state"
        agent.config_path.write_text(
            agent.config_path.read_text().replace(
                str(tmp_path / "agent" / "state"), str(agent.state_dir)
            )
        )
        try:
            agent.start()
            wait_for(
                lambda: _status(agent)["delivery_failing"] and _status(agent)["spool_reports"] >= 3,
                timeout=30,
                message="reports spooled while the collector is down",
            )
            filler = _fill(mount)
            wait_for(
                lambda: "No space left" in agent.log(),
                timeout=15,
                message="the agent to hit the full directory",
            )
            collector.start()  # back while the directory is still full
            wait_for(
                lambda: (
                    (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0)
                    >= 3
                ),
                timeout=30,
                message="delivery to resume",
            )
            filler.unlink()
            stored = metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST)
            wait_for(
                lambda: (
                    (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0)
                    >= (stored or 0) + 10
                ),
                timeout=30,
                message="new reports after space was freed",
            )
            wait_for(
                lambda: _status(agent)["delivery_failing"] is None,
                timeout=10,
                message="status to stop showing the old failure",
            )
            now = _status(agent)
            assert now["unreadable_bytes"] == 0, now
            assert now["rejected_total"] == 0
        finally:
            agent.stop()
            collector.stop()
