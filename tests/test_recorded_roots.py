"""A whole agent pointed at a recorded /proc and /sys through [agent] proc_root and sys_root.

node_exporter's --path.procfs/--path.sysfs: one setting moves every source, so
tests (and odd hosts: a container watching its host) need no per-source key.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.support import run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A MemTotal no machine running these tests has: proves meminfo came from the recording.
MEM_TOTAL_KB = 123_456_789


def _recorded_proc(root: Path, data: Path) -> Path:
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "stat").write_text(Path("/proc/stat").read_text())  # this kernel's real format
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    meminfo = [
        f"MemTotal:       {MEM_TOTAL_KB} kB" if line.startswith("MemTotal:") else line
        for line in meminfo
    ]
    (proc / "meminfo").write_text("\n".join(meminfo) + "\n")
    shutil.copy(
        FIXTURES / "mdstat-raid1-healthy-and-degraded-U_-linux-raid-2020.txt", proc / "mdstat"
    )
    # One mount: the data directory, on a filesystem type the defaults keep.
    (proc / "self" / "mounts").write_text(f"/dev/vdz1 {data} ext4 rw,relatime 0 0\n")
    (proc / "locks").write_text("")
    return proc


def test_every_source_reads_the_recorded_proc_and_sys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = _recorded_proc(tmp_path, data)
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[agent]
department = "test-dept"
state_dir = "{tmp_path / "state"}"
proc_root = "{proc}"
sys_root = "{FIXTURES / "sys-lvm-on-md"}"
[collector]
addresses = ["127.0.0.1:1"]
insecure = true
[sources]
auth_log = false
fim = false
ports = false
smart = false
io_errors = false
backup = false
""")
    result = run_cli("dcguard.agent", "collect", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert all(source["success"] for source in report["sources"]), report["sources"]
    assert int(report["host"]["memory_total_bytes"]) == MEM_TOTAL_KB * 1024
    assert [fs["mountpoint"] for fs in report["filesystems"]] == [str(data)]
    degraded = sorted(a["name"] for a in report["raid_arrays"] if a.get("degraded"))
    assert degraded == ["md1", "md2", "md3", "md4", "md5", "md6"]


def test_a_relative_root_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[agent]\ndepartment = "d"\nproc_root = "proc"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
    )
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dcguard-agent: config {config}: agent.proc_root: must be an absolute path, got 'proc'"
    ]
