"""smart: smartctl JSON from real disks (tests/fixtures/SOURCES.md) replayed by a stand-in script.

The stand-in replaces only the physical disks (failing disks cannot exist
here): it prints the recorded JSON for the device it is asked about, exits
with that capture's exit status, and logs every command line so the tests
can prove no call ever omits `-n standby`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.agent.sources.smart import SmartSource, SmartUnavailableError
from dcguard.agent.sources.storage.smartctl import disk_from_json, is_standby
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb
from tests.storage_helpers import FIXTURES, FakeDisks, collect, make_source
from tests.support import run_cli


@pytest.fixture
def disks(tmp_path: Path) -> FakeDisks:
    return FakeDisks(tmp_path)


def smart_source(tmp_path: Path, smartctl: str | Path, **storage: Any) -> SmartSource:
    config = {"storage": {"smartctl": str(smartctl), "smart_interval": "1h", **storage}}
    source = make_source("smart", config, tmp_path / "state")
    assert isinstance(source, SmartSource)
    return source


def start(source: SmartSource) -> None:
    """The first collect() starts the thread; it may already see the first round's outcome."""
    with contextlib.suppress(SmartUnavailableError):
        collect(source)


def read_once(source: SmartSource, rounds: int = 1) -> dict[str, pb.Disk]:
    """Run the background thread to the given round and return what collect() reports."""
    if rounds > 1:
        source.wake()
    source.start()
    assert source.wait_rounds(rounds, timeout=30)
    return {d.device: d for d in collect(source).disks}


def attributes(disk: pb.Disk) -> dict[int, int]:
    return {a.id: a.raw for a in disk.attributes}


def test_healthy_sata_disk(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sda", "smartctl-sata-hdd-healthy-wd181kryz-v7.3.json")
    source = smart_source(tmp_path, disks.script)
    try:
        disk = read_once(source)["/dev/sda"]
    finally:
        source.close()
    assert disk.smart_available and disk.healthy and not disk.in_standby
    assert disk.model == "WDC  WD181KRYZ-01AGBB0" or disk.model.startswith("WDC")
    assert disk.protocol == "ATA" and disk.smartctl_exit_status == 0 and not disk.error
    found = attributes(disk)
    assert {5, 197, 198} <= set(found) and found[5] == found[197] == found[198] == 0
    assert disk.temperature_celsius > 0 and disk.power_on_hours > 0
    assert disk.read_at.seconds > 0


def test_every_call_passes_standby_and_the_scanned_type(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sda", "smartctl-sata-hdd-healthy-wd140edfz-v7.0.json", dtype="sat")
    disks.set(
        "/dev/sdb",
        "smartctl-sata-hdd-passed-reallocated304-st3500418as-v7.3.json",
        dtype="megaraid,1",
    )
    source = smart_source(tmp_path, disks.script)
    try:
        read_once(source)
    finally:
        source.close()
    reads = [c for c in disks.calls() if "--scan-open" not in c]
    assert len(reads) == 2
    for call in reads:
        assert call[call.index("-n") + 1] == "standby"
        assert "--json" in call and "--all" in call
    assert reads[1][-3:] == ["-d", "megaraid,1", "/dev/sdb"]


def test_reallocated_sectors_still_passing(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sda", "smartctl-sata-hdd-passed-reallocated304-st3500418as-v7.3.json")
    disks.set("/dev/sdb", "smartctl-sata-hdd-passed-reallocated387-wd4000fyyx-megaraid-v7.1.json")
    source = smart_source(tmp_path, disks.script)
    try:
        found = read_once(source)
    finally:
        source.close()
    assert found["/dev/sda"].healthy and attributes(found["/dev/sda"])[5] == 304
    megaraid = found["/dev/sdb"]
    assert megaraid.healthy and attributes(megaraid)[5] == 387
    assert megaraid.smartctl_exit_status == 4 and not megaraid.error


def test_failing_disk(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sdc", "smartctl-sata-hdd-FAILING-hds721050dle630-usbjmicron-v7.1.json")
    source = smart_source(tmp_path, disks.script)
    try:
        disk = read_once(source)["/dev/sdc"]
    finally:
        source.close()
    assert disk.smart_available and not disk.healthy
    assert disk.smartctl_exit_status == 216
    by_id = {a.id: a for a in disk.attributes}
    assert by_id[5].raw == 1975 and by_id[5].failing_now and by_id[5].threshold == 5
    assert by_id[197].raw == 8
    assert disk.power_on_hours == 65592 and disk.temperature_celsius == 25


def test_nvme_critical_warning_and_media_errors(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set(
        "/dev/nvme0", "smartctl-nvme-FAILING-critical-warning16-samsung-mzwll3t2hajq-v7.3.json"
    )
    disks.set("/dev/nvme1", "smartctl-nvme-media-errors7-samsung970evo-v7.0.json")
    disks.set("/dev/nvme2", "smartctl-nvme-healthy-firecuda530-v7.3.json")
    source = smart_source(tmp_path, disks.script)
    try:
        found = read_once(source)
    finally:
        source.close()
    failing = found["/dev/nvme0"]
    assert not failing.healthy and failing.nvme_critical_warning == 16
    assert failing.smartctl_exit_status == 8 and failing.protocol == "NVMe"
    assert found["/dev/nvme1"].nvme_media_errors == 7 and found["/dev/nvme1"].healthy
    healthy = found["/dev/nvme2"]
    assert healthy.healthy and healthy.nvme_critical_warning == 0
    assert healthy.nvme_percentage_used >= 0 and healthy.temperature_celsius > 0


def test_sleeping_disk_keeps_last_values_and_is_not_woken(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sdc", "smartctl-sata-hdd-passed-reallocated304-st3500418as-v7.3.json")
    source = smart_source(tmp_path, disks.script)
    try:
        first = read_once(source)["/dev/sdc"]
        disks.set("/dev/sdc", "smartctl-sata-STANDBY-nocheck-standby-v7.5.json")
        asleep = read_once(source, rounds=2)["/dev/sdc"]
    finally:
        source.close()
    assert asleep.in_standby
    assert asleep.read_at == first.read_at
    assert asleep.healthy and attributes(asleep)[5] == 304 and asleep.model == first.model
    # Restarted agent, disk still asleep: the saved values are reported, marked as old.
    again = smart_source(tmp_path, disks.script)
    try:
        restarted = read_once(again)["/dev/sdc"]
    finally:
        again.close()
    assert restarted.in_standby and restarted.read_at == first.read_at
    assert attributes(restarted)[5] == 304


def test_standby_before_any_read_and_smartctl_before_7_5(tmp_path: Path, disks: FakeDisks) -> None:
    # smartctl 7.0-7.4 print the same message and exit 2 but no power_mode object
    # (corpus README, section 1 (e)): drop it from the 7.5 capture to get that shape.
    capture = json.loads((FIXTURES / "smartctl-sata-STANDBY-nocheck-standby-v7.5.json").read_text())
    del capture["power_mode"]
    older = tmp_path / "standby-7.4.json"
    older.write_text(json.dumps(capture))
    disks.set("/dev/sdc", older)
    disks.set("/dev/sdd", "smartctl-sata-STANDBY-nocheck-standby-v7.5.json")
    # smartctl 7.3's plain-text answer (its --json not honoured): the same message, exit 2.
    disks.set("/dev/sde", "smartctl-STANDBY-text-output-exit2-v7.3.txt", exit_code=2)
    source = smart_source(tmp_path, disks.script)
    try:
        found = read_once(source)
    finally:
        source.close()
    assert sorted(found) == ["/dev/sdc", "/dev/sdd", "/dev/sde"]
    for disk in found.values():
        assert disk.in_standby and not disk.smart_available and not disk.HasField("read_at")
        assert not disk.error


def test_smartctl_missing_is_one_status_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    source = smart_source(tmp_path, tmp_path / "no-such-smartctl")
    try:
        start(source)
        for rounds in (1, 2, 3):
            assert source.wait_rounds(rounds, timeout=30)
            with pytest.raises(SmartUnavailableError, match="no-such-smartctl not found"):
                collect(source)
            source.wake()
    finally:
        source.close()
    warnings = [r for r in caplog.records if "not found" in r.getMessage()]
    assert len(warnings) == 1


def test_smartctl_not_permitted(tmp_path: Path) -> None:
    script = tmp_path / "smartctl"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)  # not executable: what a non-root agent meets with a root-only binary
    source = smart_source(tmp_path, script)
    try:
        start(source)
        assert source.wait_rounds(1, timeout=30)
        with pytest.raises(SmartUnavailableError, match="permission denied"):
            collect(source)
    finally:
        source.close()


def test_garbage_from_smartctl(tmp_path: Path, disks: FakeDisks) -> None:
    healthy = "smartctl-sata-hdd-healthy-wd140edfz-v7.0.json"
    disks.set("/dev/sda", healthy, cut=400)  # truncated JSON
    disks.set("/dev/sdb", healthy, exit_code=2)  # open failed, no sleep message
    extra = json.loads((FIXTURES / healthy).read_text())
    extra["from_the_future"] = {"x": [1, 2]}
    extra["temperature"] = "hot"  # wrong type
    extra["ata_smart_attributes"]["table"].append({"id": "five", "raw": None})
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(extra))
    disks.set("/dev/sdc", odd)
    empty = tmp_path / "empty.json"
    empty.write_text("[1, 2]")
    disks.set("/dev/sdd", empty, exit_code=64)
    source = smart_source(tmp_path, disks.script)
    try:
        found = read_once(source)
    finally:
        source.close()
    assert "invalid JSON" in found["/dev/sda"].error
    assert not found["/dev/sdb"].smart_available and found["/dev/sdb"].error
    assert found["/dev/sdc"].healthy and found["/dev/sdc"].temperature_celsius == 0
    assert 5 in attributes(found["/dev/sdc"])
    assert found["/dev/sdd"].error and found["/dev/sdd"].smartctl_exit_status == 64


def test_scan_garbage_is_a_status(tmp_path: Path, disks: FakeDisks) -> None:
    disks.write(scan='{"devices": [', scan_exit=0)
    source = smart_source(tmp_path, disks.script)
    try:
        start(source)
        assert source.wait_rounds(1, timeout=30)
        with pytest.raises(SmartUnavailableError, match="scan-open"):
            collect(source)
    finally:
        source.close()


def test_configured_device_list_skips_the_scan(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sdq", "smartctl-sata-hdd-healthy-wd140edfz-v7.0.json")
    source = smart_source(tmp_path, disks.script, smart_devices=["/dev/sdq sat"])
    try:
        assert read_once(source)["/dev/sdq"].healthy
    finally:
        source.close()
    assert not [c for c in disks.calls() if "--scan-open" in c]


def test_real_smartctl_on_this_machine(tmp_path: Path) -> None:
    """The installed smartctl: whatever it finds here is reported without error."""
    source = smart_source(tmp_path, "/usr/sbin/smartctl")
    try:
        source.start()
        assert source.wait_rounds(1, timeout=60)
        for disk in collect(source).disks:
            assert disk.device.startswith("/dev/")
    finally:
        source.close()


@pytest.mark.parametrize(
    ("storage", "needle"),
    [
        ({"smart_interval": "soon"}, "storage.smart_interval: not a duration"),
        ({"smart_interval": "0s"}, "storage.smart_interval: must be at least 1s"),
        ({"smart_timeout": 30}, "storage.smart_timeout: must be a duration string"),
        ({"smart_devices": "/dev/sda"}, "storage.smart_devices: must be a list of strings"),
        ({"smart_devices": ["sda"]}, "storage.smart_devices: entries are"),
        ({"smart_devices": ["/dev/sda sat extra"]}, "storage.smart_devices: entries are"),
        ({"smart_attributes": [5, 300]}, "storage.smart_attributes: must be a list of SMART"),
        ({"smart_attributes": ["5"]}, "storage.smart_attributes: must be a list of SMART"),
        ({"smartctl": ""}, "storage.smartctl: must not be empty"),
    ],
)
def test_smart_config_garbage(tmp_path: Path, storage: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        make_source("smart", {"storage": storage}, tmp_path)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "smart_status",
                        "passed",
                        "temperature",
                        "current",
                        "power_on_time",
                        "hours",
                        "ata_smart_attributes",
                        "table",
                        "id",
                        "raw",
                        "value",
                        "when_failed",
                        "device",
                        "protocol",
                        "nvme_smart_health_information_log",
                        "critical_warning",
                        "smartctl",
                        "messages",
                        "string",
                        "power_mode",
                        "name",
                        "exit_status",
                        "model_name",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=30,
    ),
    st.integers(0, 255),
)
def test_any_json_shape_from_smartctl_makes_a_disk(data: Any, returncode: int) -> None:
    if not isinstance(data, dict):
        data = {"x": data}
    if not is_standby(data, returncode):
        disk = disk_from_json("/dev/sda", data, returncode, range(1, 256))
        assert disk.device == "/dev/sda" and disk.smartctl_exit_status == returncode
        disk.SerializeToString()


def test_out_of_range_numbers_are_clamped_not_fatal() -> None:
    data = {
        "smart_status": {"passed": True},
        "power_on_time": {"hours": 2**70},
        "temperature": {"current": -5},
        "nvme_smart_health_information_log": {
            "critical_warning": 2**40,
            "media_errors": -3,
            "percentage_used": 2**33,
        },
        "ata_smart_attributes": {
            "table": [{"id": 5, "value": -1, "worst": 2**40, "thresh": 10, "raw": {"value": 2**80}}]
        },
    }
    disk = disk_from_json("/dev/nvme0", data, 0, [5])
    assert disk.power_on_hours == 2**64 - 1 and disk.nvme_critical_warning == 2**32 - 1
    assert disk.nvme_media_errors == 0 and disk.temperature_celsius == -5
    assert disk.attributes[0].raw == 2**63 - 1 and disk.attributes[0].value == 0


def test_one_shot_collect_waits_for_the_first_read(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sdc", "smartctl-sata-hdd-FAILING-hds721050dle630-usbjmicron-v7.1.json")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndepartment = "t"\nstate_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
        f"[sources]\ndisable_defaults = true\nsmart = true\n"
        f'[storage]\nsmartctl = "{disks.script}"\n'
    )
    result = run_cli("dcguard.agent", "collect", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    [disk] = json.loads(result.stdout)["disks"]
    assert disk["device"] == "/dev/sdc" and disk["smart_available"] and "healthy" not in disk


def test_collect_json_says_success_for_every_source_even_a_failed_one(tmp_path: Path) -> None:
    """A consumer of `collect --json` never has to guess: false is printed, not omitted."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndepartment = "t"\nstate_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
        "[sources]\ndisable_defaults = true\nsmart = true\nhost = true\n"
        f'[storage]\nsmartctl = "{tmp_path / "no-smartctl"}"\n'
    )
    result = run_cli("dcguard.agent", "collect", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    sources = {s["name"]: s for s in json.loads(result.stdout)["sources"]}
    assert sources["host"]["success"] is True
    assert sources["smart"]["success"] is False and "no-smartctl" in sources["smart"]["error"]


def test_a_hung_disk_times_out_alone(tmp_path: Path, disks: FakeDisks) -> None:
    disks.set("/dev/sda", "smartctl-sata-hdd-healthy-wd140edfz-v7.0.json", sleep=30)
    disks.set("/dev/sdb", "smartctl-sata-hdd-healthy-wd181kryz-v7.3.json")
    source = smart_source(tmp_path, disks.script, smart_timeout="1s")
    try:
        found = read_once(source)
    finally:
        source.close()
    assert "did not finish within 1s" in found["/dev/sda"].error
    assert found["/dev/sdb"].healthy and not found["/dev/sdb"].error
