"""mdraid: /proc/mdstat from real hosts (tests/fixtures/SOURCES.md) parsed into RaidArrays."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.agent.sources.storage.mdstat import parse_mdstat
from dcguard.common.config import ConfigError
from tests.storage_helpers import FIXTURES, collect, make_source

MDSTAT_FILES = sorted(FIXTURES.glob("mdstat-*.txt"))


def arrays(name: str) -> dict[str, object]:
    text = (FIXTURES / name).read_text()
    return {a.name: a for a in parse_mdstat(text)}


@pytest.mark.parametrize("path", MDSTAT_FILES, ids=lambda p: p.name)
def test_every_array_of_every_capture_is_reported_consistently(path: Path) -> None:
    text = path.read_text()
    headers = re.findall(r"^(md\w+) :", text, flags=re.MULTILINE)
    parsed = parse_mdstat(text)
    assert [a.name for a in parsed] == headers
    for array in parsed:
        assert array.disks_active <= array.disks_total or array.state.startswith("active")
        assert 0.0 <= array.sync_progress_ratio <= 1.0
        assert set(array.failed_members) <= set(array.members)
        assert set(array.spares) <= set(array.members)


def test_healthy_and_degraded_raid1_after_motherboard_swap() -> None:
    found = arrays("mdstat-raid1-healthy-and-degraded-U_-linux-raid-2020.txt")
    assert not found["md0"].degraded and not found["md7"].degraded
    for name in ("md1", "md2", "md3", "md4", "md5", "md6"):
        md = found[name]
        assert (md.level, md.disks_active, md.disks_total, md.degraded) == ("raid1", 1, 2, True)


def test_raid1_recovering_with_failed_member() -> None:
    md = arrays("mdstat-raid1-degraded-_U-recovering-with-F-lab.txt")["md127"]
    assert md.degraded and md.failed_members == ["sda1"]
    assert md.sync_action == "recovery"
    assert md.sync_progress_ratio == pytest.approx(0.067)


def test_partial_paste_without_blank_lines_still_separates_arrays() -> None:
    found = arrays("mdstat-raid5-recovering-PARTIAL-linux-raid-2019.txt")
    assert list(found) == ["md0", "md1", "md2", "md3"]
    assert found["md0"].disks_total == 6 and not found["md0"].degraded
    md3 = found["md3"]
    assert (md3.level, md3.disks_active, md3.disks_total, md3.degraded) == ("raid5", 5, 6, True)
    assert md3.sync_action == "recovery" and md3.sync_progress_ratio == pytest.approx(0.077)


def test_inactive_arrays_and_whitespace_only_lines() -> None:
    found = arrays("mdstat-inactive-arrays-plus-degraded-auto-read-only-lab.txt")
    assert found["md125"].state == "inactive" and found["md125"].degraded
    assert found["md125"].members == ["sdb8", "sdb9", "sdb10", "sdb7"]
    assert found["md125"].spares == ["sdb10"]
    assert found["md126"].state == "active (auto-read-only)" and found["md126"].degraded
    assert found["md127"].disks_active == 0


def test_composite_stress_file() -> None:
    found = arrays("mdstat-COMPOSITE-prometheus-procfs-fixture.txt")
    assert len(found) == 18
    assert found["md6"].failed_members == ["sdb2"] and found["md6"].spares == ["sdc"]
    assert (found["md8"].sync_action, found["md8"].degraded) == ("resync", False)
    assert found["md201"].sync_action == "check"
    assert found["md9"].sync_action == "resync" and found["md9"].sync_progress_ratio == 0.0
    assert found["md42"].sync_action == "reshape" and found["md42"].degraded
    assert found["md7"].degraded and found["md7"].failed_members == ["sdc1"]
    # raid0/linear have no [n/m]: every member counts, nothing is degraded.
    assert (found["md10"].disks_active, found["md10"].disks_total) == (2, 2)
    assert found["md120"].level == "linear" and not found["md120"].degraded
    # An IMSM container is always "inactive": it is not a broken array.
    md219 = found["md219"]
    assert md219.container and not md219.degraded and not md219.spares
    assert md219.disks_active == md219.disks_total == 3
    assert found["md4"].degraded  # inactive raid1 with a failed member
    assert found["md101"].state == "active (read-only)"


def test_raid6_resync_and_raid10_check() -> None:
    md0 = arrays("mdstat-raid6-resync-in-progress-linux-raid-2022.txt")["md0"]
    assert md0.disks_total == 12 and md0.sync_action == "resync"
    assert md0.sync_progress_ratio == pytest.approx(0.435)
    md2 = arrays("mdstat-raid10-check-in-progress-telegraf.txt")["md2"]
    assert (md2.level, md2.disks_total, md2.sync_action) == ("raid10", 12, "check")


def test_source_reads_the_configured_path(tmp_path: Path) -> None:
    mdstat = tmp_path / "mdstat"
    mdstat.write_bytes(
        (FIXTURES / "mdstat-raid5-failed-member-F-degraded-linux-raid-2020.txt").read_bytes()
    )
    source = make_source("mdraid", {"storage": {"mdstat": str(mdstat)}}, tmp_path)
    [array] = collect(source).raid_arrays
    assert (array.name, array.level, array.degraded) == ("md0", "raid5", True)
    assert (array.disks_active, array.disks_total, array.disks_failed) == (3, 4, 1)
    assert list(array.failed_members) == ["dm-3"]
    assert "dm-3" in array.members


def test_no_md_driver_means_no_arrays(tmp_path: Path) -> None:
    source = make_source("mdraid", {"storage": {"mdstat": str(tmp_path / "absent")}}, tmp_path)
    assert len(collect(source).raid_arrays) == 0


def test_garbage_file_yields_no_arrays_and_no_crash(tmp_path: Path) -> None:
    mdstat = tmp_path / "mdstat"
    mdstat.write_bytes(b"\x00\xff garbage\nmd : \n   [9/x] [UU\n md0 : active\n" * 50)
    source = make_source("mdraid", {"storage": {"mdstat": str(mdstat)}}, tmp_path)
    for array in collect(source).raid_arrays:
        assert array.disks_active <= array.disks_total


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (5, "storage.mdstat: must be a string"),
        ("", "storage.mdstat: must not be empty"),
    ],
)
def test_mdstat_key_garbage(tmp_path: Path, value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        make_source("mdraid", {"storage": {"mdstat": value}}, tmp_path)


def test_unknown_storage_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.mdstats: unknown key"):
        make_source("mdraid", {"storage": {"mdstats": "/proc/mdstat"}}, tmp_path)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "md0 : active raid1 sda1[0] sdb1[1](F)",
                "md1 : inactive sdc[0](S)",
                "      [2/1] [U_]",
                "      [=>...]  recovery = 12.5% (1/8) finish=1.0min speed=1K/sec",
                "resync=DELAYED",
                "Personalities : [raid1]",
                "unused devices: <none>",
                "   ",
                "",
                "md2 : active",
                "      1024 blocks super external:imsm",
                "      [9/x] [UU",
                "md3 :",
                "\x00\xff",
            ]
        )
        | st.text(max_size=40),
        max_size=30,
    )
)
def test_any_mix_of_mdstat_lines_parses_without_error(lines: list[str]) -> None:
    for array in parse_mdstat("\n".join(lines)):
        assert 0.0 <= array.sync_progress_ratio <= 1.0
        assert array.disks_active >= 0 and array.disks_total >= 0


def test_absurd_disk_counts_do_not_break_the_report(tmp_path: Path) -> None:
    mdstat = tmp_path / "mdstat"
    mdstat.write_text("md0 : active raid1 sda1[0]\n      10 blocks [99999999999/1] [U_]\n")
    source = make_source("mdraid", {"storage": {"mdstat": str(mdstat)}}, tmp_path)
    [array] = collect(source).raid_arrays
    assert array.degraded and array.disks_total == 65536
