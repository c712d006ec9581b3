"""A server with more mounts than the collector takes in one report still reports.

A real agent reads a mount table of 301 filesystems (each a real directory,
so statvfs works) and delivers to a real collector with default limits.
"""

from __future__ import annotations

from pathlib import Path

from dcguard.common.limits import MAX_FILESYSTEMS
from tests.support import Collector, metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}
MOUNTS = 301


def _mount_table(root: Path) -> Path:
    """/proc/self/mounts of a big server: 300 data mounts, one of them read-only."""
    lines = []
    for index in range(MOUNTS):
        mountpoint = root / f"srv{index:03d}"
        mountpoint.mkdir(parents=True)
        options = "ro,relatime" if index == 299 else "rw,relatime"
        lines.append(f"/dev/mapper/vg-lv{index} {mountpoint} ext4 {options} 0 0")
    table = root / "mounts"
    table.write_text("\n".join(lines) + "\n")
    return table


def test_a_server_with_301_filesystems_is_reported_with_the_most_important_256(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    table = _mount_table(tmp_path / "mnt")
    agent = make_agent(
        [collector.grpc_address],
        interval="500ms",
        extra_config=f'[filesystem]\nmounts_file = "{table}"\n',
    )
    agent.start()
    wait_for(
        lambda: (
            (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0) >= 3
        ),
        timeout=30,
        message="reports from the big server",
    )
    samples = collector.metrics()
    assert metric(samples, "dcguard_agent_up", **HOST) == 1
    reported = [
        labels
        for (name, labels) in samples
        if name == "dcguard_filesystem_size_bytes" and ("host", "testhost") in labels
    ]
    assert len(reported) == MAX_FILESYSTEMS
    # The read-only one is a finding of its own: it is never the one left out.
    assert (
        metric(
            samples, "dcguard_filesystem_readonly", mountpoint=str(tmp_path / "mnt/srv299"), **HOST
        )
        == 1
    )
    assert (
        metric(samples, "dcguard_agent_report_omitted_entries", kind="filesystems", **HOST)
        == MOUNTS - MAX_FILESYSTEMS
    )
    assert metric(samples, "dcguard_collector_reports_rejected_total", reason="too_large") == 0
    assert metric(samples, "dcguard_agent_reports_lost_total", **HOST) == 0
    assert "left out" in agent.log()


def test_a_host_whose_reports_a_stricter_collector_refuses_is_visible(
    tmp_path: Path, make_agent
) -> None:
    """Limits lowered below the agent's cap: refused, but the host shows on /metrics."""
    collector = Collector(tmp_path / "collector", extra_config="[limits]\nmax_entries = 8\n")
    collector.start()
    try:
        table = tmp_path / "mounts"
        table.write_text(
            "".join(
                f"/dev/sd{i} {tmp_path} ext4 rw 0 0\n".replace(
                    str(tmp_path), str(tmp_path / f"m{i}")
                )
                for i in range(10)
            )
        )
        for i in range(10):
            (tmp_path / f"m{i}").mkdir()
        agent = make_agent(
            [collector.grpc_address],
            interval="200ms",
            extra_config=f'[filesystem]\nmounts_file = "{table}"\n',
        )
        agent.start()
        wait_for(
            lambda: (
                (
                    metric(
                        collector.metrics(),
                        "dcguard_agent_reports_rejected_total",
                        reason="too_large",
                        **HOST,
                    )
                    or 0
                )
                >= 3
            ),
            timeout=30,
            message="the refusals counted for the host",
        )
        assert metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) is None
    finally:
        collector.stop()
