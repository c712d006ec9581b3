"""The data-loss promise end to end, with real processes and a real restic repository.

A server whose restic backup is stale and lies on the same disk as its data,
and whose md array is degraded (a recorded /proc/mdstat: a degraded array
cannot be made here), must top `dcguard-collector risk` with the standing
reason of each subject in plain words (one job, one finding), and show the
same reasons on /metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.storage_helpers import FIXTURES
from tests.submit import agent_info, make_report, submit
from tests.support import metric, wait_for

HOST = {"host": "testhost", "department": "test-dept"}


def _restic(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        ["restic", *args], check=True, capture_output=True, timeout=120, env={**os.environ, **env}
    )


def test_a_stale_same_disk_restic_backup_and_a_degraded_array_top_the_risk_list(
    tmp_path: Path, collector, make_agent
) -> None:
    data = tmp_path / "data"  # the source and the repository share one filesystem
    data.mkdir()
    (data / "db.sql").write_bytes(os.urandom(20000))
    password = tmp_path / "restic-password"
    password.write_text("correct horse battery staple\n")
    repo, cache = tmp_path / "restic-repo", tmp_path / "restic-cache"
    env = {
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(password),
        "RESTIC_CACHE_DIR": str(cache),
    }
    _restic("init", env=env)
    three_days_ago = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 3 * 86400))
    _restic("backup", "--time", three_days_ago, str(data), env=env)

    # Another, healthy server, so "at the top" means something.
    submit(collector.grpc_address, [make_report(1)], agent_info(host="web01"))

    agent = make_agent(
        [collector.grpc_address],
        extra_config=f"""
[sources]
smart = false
io_errors = false
auth_log = false
fim = false
ports = false

[storage]
mdstat = "{FIXTURES / "mdstat-raid1-healthy-and-degraded-U_-linux-raid-2020.txt"}"

[[backup]]
name = "mysql-nightly"
kind = "restic"
rpo = "26h"
repository = "{repo}"
password_file = "{password}"
source = "{data}"
env = {{ RESTIC_CACHE_DIR = "{cache}" }}
""",
    )
    agent.start()

    # The job is stale and on its data's disk: for one job the most severe finding stands
    # (stale, 40), and BackupOnSameDevice still fires from dcguard_backup_same_device.
    expected = ("backup_stale", "raid_degraded")

    def reasons_on_metrics() -> bool:
        samples = collector.metrics()
        return all(
            metric(samples, "dcguard_data_loss_risk", reason=r, **HOST) == 1 for r in expected
        )

    wait_for(reasons_on_metrics, timeout=60, message=f"{expected} on /metrics")
    samples = collector.metrics()
    assert metric(samples, "dcguard_backup_same_device", job="mysql-nightly", **HOST) == 1
    assert metric(samples, "dcguard_data_loss_risk", reason="backup_same_device", **HOST) == 0
    assert metric(samples, "dcguard_data_loss_risk_score", **HOST) > 0

    result = collector.cli("risk", "--json")
    assert result.returncode == 0, result.stderr
    ranked = json.loads(result.stdout)
    assert ranked[0]["host"] == "testhost"
    found = {r["reason"]: r["message"] for r in ranked[0]["reasons"]}
    assert set(expected) <= set(found)
    assert "mysql-nightly" in found["backup_stale"] and "26h" in found["backup_stale"]
    assert "backup_same_device" not in found

    text = collector.cli("risk").stdout
    assert text.index("testhost") < text.index("web01") if "web01" in text else "testhost" in text
    assert "mysql-nightly" in text

    # The same state, as a Vietnamese operator reads it.
    vi = collector.cli("risk", "--lang", "vi")
    assert vi.returncode == 0, vi.stderr
    assert "testhost (test-dept): rủi ro " in vi.stdout
    assert (
        "backup_stale: tác vụ sao lưu 'mysql-nightly': lần sao lưu thành công gần nhất "
        "cách đây 3 ngày; mục tiêu điểm khôi phục (RPO) là 26 giờ"
    ) in vi.stdout
    assert "raid_degraded: mảng RAID md" in vi.stdout and "bị suy giảm" in vi.stdout
    assert "máy chủ có rủi ro mất dữ liệu" in vi.stdout
