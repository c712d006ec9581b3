"""io_errors: kernel log lines from real I-O failures (fixtures/SOURCES.md), counted per device."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.agent.sources.io_errors import IoErrorsSource
from dcguard.agent.sources.storage.isotime import parse_iso_time
from dcguard.agent.sources.storage.kernlog import ErrorCounter, line_timestamp
from dcguard.common.config import ConfigError
from tests.storage_helpers import FIXTURES, collect, make_source
from tests.support import wait_for

CORPUS = FIXTURES / "kernel-io-errors.log"


def kernel_lines() -> list[str]:
    return [
        line for line in CORPUS.read_text().splitlines(keepends=True) if not line.startswith("#")
    ]


def file_source(tmp_path: Path, log: Path, **storage: Any) -> IoErrorsSource:
    config = {"storage": {"kernel_log": str(log), "sys_root": str(tmp_path / "nosys"), **storage}}
    source = make_source("io_errors", config, tmp_path / "state")
    assert isinstance(source, IoErrorsSource)
    return source


def counts(source: IoErrorsSource) -> dict[str, int]:
    return {e.device: e.errors_total for e in collect(source).io_errors}


def test_every_kind_of_error_in_the_corpus_is_counted(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("".join(kernel_lines()))
    found = counts(file_source(tmp_path, log))
    assert found["sdg"] == 9  # RFC 3339 journal lines, kernel 6.13 "I/O error, dev"
    assert found["sdj"] == 4  # 3 critical medium errors + 1 Buffer I/O error
    assert found["sdc"] == 4  # 2 ATA failed commands mapped via "sd 24:0:0:0: [sdc]"
    assert found["sdd"] == 2  # print_req_error (4.x) + ata6 failed command
    assert found["dm-2"] == 1  # EXT4-fs error (device dm-2)
    assert found["sda1"] == 1  # EXT4-fs error in a Dutch dmesg -T capture
    assert found["sdb1"] == 2  # Buffer I/O error on a partition
    assert found["sda2"] == 2  # "Buffer I/O error on device sda2"
    assert found["vda4"] == 2  # new XFS metadata I/O error wording
    assert found["dm-7"] == 1  # old XFS "metadata I/O error: block"
    assert not any(name.startswith("ata") for name in found)


def test_last_error_time_and_message(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("".join(kernel_lines()))
    entries = {e.device: e for e in collect(file_source(tmp_path, log)).io_errors}
    sdg = entries["sdg"]
    # 2025-03-06T05:10:10+11:00 is the last sdg line in block B.
    assert sdg.last_error_at.seconds == 1741198210
    assert sdg.last_message.endswith(sdg.last_message.strip())
    assert "I/O error, dev sdg" in sdg.last_message and len(sdg.last_message) <= 300


def test_ata_port_mapped_through_sysfs_or_reported_as_port(tmp_path: Path) -> None:
    lines = [
        "[  10.1] ata3.00: exception Emask 0x0 SAct 0x0 SErr 0x0 action 0x0\n",
        "[  10.2] ata3.00: failed command: READ DMA EXT\n",
        "[  10.3] ata3: EH complete\n",
        "[  11.0] ata7.00: failed command: WRITE FPDMA QUEUED\n",
        "[  11.1] ata7: EH complete\n",
    ]
    log = tmp_path / "kern.log"
    log.write_text("".join(lines))
    # Real layout: /sys/class/block/sdb -> ../../devices/pci0000:00/0000:00:1f.2/ata3/host2/
    # target2:0:0/2:0:0:0/block/sdb
    sys_root = tmp_path / "sys"
    disk_dir = sys_root / "devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdb"
    disk_dir.mkdir(parents=True)
    (sys_root / "class/block").mkdir(parents=True)
    (sys_root / "class/block/sdb").symlink_to(
        "../../devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdb"
    )
    found = counts(file_source(tmp_path, log, sys_root=str(sys_root)))
    assert found == {"sdb": 1, "ata7": 1}


def test_position_and_counts_persist_only_on_commit(tmp_path: Path) -> None:
    lines = kernel_lines()
    log = tmp_path / "kern.log"
    log.write_text("".join(lines[:40]))
    first = file_source(tmp_path, log)
    before = counts(first)
    # Crash before commit: a new agent reads the same lines again, nothing lost or doubled.
    assert counts(file_source(tmp_path, log)) == before
    first.commit()
    with log.open("a") as handle:
        handle.write("".join(lines[40:]))
    restarted = file_source(tmp_path, log)
    whole = tmp_path / "whole.log"
    whole.write_text("".join(lines))
    assert counts(restarted) == counts(file_source(tmp_path / "other", whole))


def test_collect_without_commit_continues_without_double_counting(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    line = "[ 1.0] I/O error, dev sdz, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0\n"
    log.write_text(line)
    source = file_source(tmp_path, log)
    assert counts(source) == {"sdz": 1}
    assert counts(source) == {"sdz": 1}  # the report was lost; no new lines
    with log.open("a") as handle:
        handle.write(line)
    assert counts(source) == {"sdz": 2}


def test_partial_last_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("[ 1.0] Buffer I/O error on dev sdq, logi")
    source = file_source(tmp_path, log)
    assert counts(source) == {}
    with log.open("a") as handle:
        handle.write("cal block 5, async page read\n")
    assert counts(source) == {"sdq": 1}


@pytest.mark.parametrize("rotated", ["kern.log.1", "kern.log-20261206"])
def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(
    tmp_path: Path, rotated: str
) -> None:
    """Plain numbering and logrotate's dateext (kern.log-YYYYMMDD): the tail is counted too."""
    line = "[ 1.0] I/O error, dev sd{0}, sector 8 op 0x0:(READ) flags 0x0\n"
    log = tmp_path / "kern.log"
    log.write_text(line.format("a"))
    source = file_source(tmp_path, log)
    assert counts(source) == {"sda": 1}
    source.commit()
    with log.open("a") as handle:
        handle.write(line.format("b"))  # written just before logrotate moved the file
    log.rename(tmp_path / rotated)
    log.write_text(line.format("c"))
    restarted = file_source(tmp_path, log)
    assert counts(restarted) == {"sda": 1, "sdb": 1, "sdc": 1}
    restarted.commit()
    assert counts(file_source(tmp_path, log)) == {"sda": 1, "sdb": 1, "sdc": 1}


def test_copytruncate_starts_again_from_the_top(tmp_path: Path) -> None:
    line = "[ 1.0] EXT4-fs error (device sd{0}1): ext4_find_entry:1455: inode #2\n"
    log = tmp_path / "kern.log"
    log.write_text(line.format("a") * 3)
    source = file_source(tmp_path, log)
    assert counts(source) == {"sda1": 3}
    log.write_text(line.format("b"))
    assert counts(source) == {"sda1": 3, "sdb1": 1}


def test_a_position_saved_by_the_old_format_resumes(tmp_path: Path) -> None:
    """An agent upgraded from a version that saved {path, inode, offset} loses nothing."""
    line = "[ 1.0] I/O error, dev sd{0}, sector 8 op 0x0:(READ) flags 0x0\n"
    log = tmp_path / "kern.log"
    log.write_text(line.format("a") * 2)
    (tmp_path / "state").mkdir()
    saved = {
        "counter": {"counts": {"sda": [2, 1.0, "I/O error, dev sda"]}, "ata_ports": {}},
        "position": {
            "path": str(log),
            "inode": log.stat().st_ino,
            "offset": log.stat().st_size,
            "cursor": "",
        },
    }
    (tmp_path / "state/io-errors.json").write_text(json.dumps(saved))
    with log.open("a") as handle:
        handle.write(line.format("b"))
    source = file_source(tmp_path, log)
    assert counts(source) == {"sda": 2, "sdb": 1}
    source.commit()
    # ... and once rotated while the agent was stopped, from the rotated file.
    (tmp_path / "state/io-errors.json").write_text(json.dumps(saved))
    log.rename(tmp_path / "kern.log.1")
    log.write_text(line.format("c"))
    assert counts(file_source(tmp_path, log)) == {"sda": 2, "sdb": 1, "sdc": 1}


def test_reading_is_bounded_per_cycle(tmp_path: Path) -> None:
    line = "[ 1.0] I/O error, dev sdx, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0\n"
    log = tmp_path / "kern.log"
    log.write_text(line * 1000)
    source = file_source(tmp_path, log, kernel_log_max_read_bytes=4096)
    first = counts(source)["sdx"]
    assert 0 < first < 1000
    for _ in range(100):
        if counts(source)["sdx"] == 1000:
            break
    assert counts(source)["sdx"] == 1000


def test_corrupt_state_file_starts_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "kern.log"
    log.write_text("[ 1.0] I/O error, dev sdz, sector 8 op 0x0:(READ)\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state/io-errors.json").write_text('{"counter": {"counts": {"sda": "x"}}')
    assert counts(file_source(tmp_path, log)) == {"sdz": 1}
    assert "unreadable" in caplog.text


def test_counts_without_a_readable_position_start_over_with_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Keeping the counts but reading the file again from its start would count twice."""
    log = tmp_path / "kern.log"
    log.write_text("[ 1.0] I/O error, dev sdz, sector 8 op 0x0:(READ)\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state/io-errors.json").write_text(
        json.dumps(
            {
                "counter": {"counts": {"sdz": [1, 1.0, "I/O error, dev sdz"]}, "ata_ports": {}},
                "position": {"path": str(log), "cursor": "", "checkpoint": {"dev": "x"}},
            }
        )
    )
    assert counts(file_source(tmp_path, log)) == {"sdz": 1}
    assert "unreadable" in caplog.text


def test_missing_log_file_is_a_status(tmp_path: Path) -> None:
    source = file_source(tmp_path, tmp_path / "absent.log")
    with pytest.raises(FileNotFoundError):
        collect(source)


def test_garbage_lines_count_nothing(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_bytes(
        b"\xff\xfe\x00garbage\n"
        + b"I/O error, dev , sector\n"
        + b"EXT4-fs error (device \n"
        + b"x" * 10000
        + b"\n"
    )
    assert counts(file_source(tmp_path, log)) == {}


JOURNALCTL = """\
import json, os, sys, time
with open({calls!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "--follow" in sys.argv:
    # What journald logged after the catch-up run; then wait for more, like journalctl -f.
    follow = {out!r} + ".follow"
    lines = open(follow).read().splitlines(True) if os.path.exists(follow) else []
    cursors = [json.loads(line)["__CURSOR"] for line in lines]
    after = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--after-cursor=")]
    if after and after[0] in cursors:
        lines = lines[cursors.index(after[0]) + 1:]
    sys.stdout.write("".join(lines))
    sys.stdout.flush()
    while not os.path.exists(follow + ".exit"):
        time.sleep(0.05)
    os.remove(follow + ".exit")  # one exit per touch
    sys.exit(0)
sys.stdout.write(open({out!r}).read())
sys.exit(int(open({code!r}).read()))
"""


def fake_journalctl(tmp_path: Path) -> tuple[dict[str, Any], Path, Path, Path]:
    """storage settings using a script that prints `journalctl -o json` lines, and its files."""
    out, code, calls = tmp_path / "out", tmp_path / "code", tmp_path / "calls"
    script = tmp_path / "journalctl"
    script.write_text(
        f"#!{sys.executable}\n" + JOURNALCTL.format(calls=str(calls), out=str(out), code=str(code))
    )
    script.chmod(0o755)
    code.write_text("0")
    out.write_text("")
    storage = {"kernel_log": "journal", "journalctl": str(script), "sys_root": str(tmp_path)}
    return storage, out, code, calls


def journal_source(tmp_path: Path, storage: dict[str, Any]) -> IoErrorsSource:
    """A journal-mode source whose background thread has read the journal once."""
    source = make_source("io_errors", {"storage": storage}, tmp_path / "state")
    assert isinstance(source, IoErrorsSource)
    with contextlib.suppress(RuntimeError):
        collect(source)  # starts the reader thread
    assert source.wait_rounds(1, timeout=30)
    return source


def journal_entry(message: Any, usec: int, cursor: str) -> str:
    return (
        json.dumps(
            {
                "__CURSOR": cursor,
                "__REALTIME_TIMESTAMP": str(usec),
                "_TRANSPORT": "kernel",
                "PRIORITY": "3",
                "SYSLOG_FACILITY": "0",
                "SYSLOG_IDENTIFIER": "kernel",
                "MESSAGE": message,
            }
        )
        + "\n"
    )


def test_journal_resumes_from_its_cursor(tmp_path: Path) -> None:
    """journald cannot run here: a script prints `journalctl -o json` lines in journald's format."""
    storage, out, code, calls = fake_journalctl(tmp_path)
    out.write_text(
        journal_entry("I/O error, dev sdg, sector 17416 op 0x0:(READ) flags 0x80700", 10**15, "c1")
        + journal_entry(list(b"Buffer I/O error on dev sdg1, logical block 9, \xff"), 10**15, "c2")
        + "{truncated\n"
    )
    source = journal_source(tmp_path, storage)
    found = {e.device: e for e in collect(source).io_errors}
    assert found["sdg"].errors_total == 1 and found["sdg1"].errors_total == 1
    assert found["sdg"].last_error_at.seconds == 10**9
    source.commit()
    source.close()
    out.write_text("")
    restarted = journal_source(tmp_path, storage)
    assert {e.device: e.errors_total for e in collect(restarted).io_errors} == {"sdg": 1, "sdg1": 1}
    runs = [json.loads(line) for line in calls.read_text().splitlines()]
    catch_ups = [argv for argv in runs if "--follow" not in argv]
    assert len(catch_ups) == 2, "one catch-up run per start, then only the follower"
    first, second = catch_ups
    assert "--lines=20000" in first and "_TRANSPORT=kernel" in first and "-k" not in first
    assert "--after-cursor=c2" in second and "--lines=20000" not in second
    code.write_text("1")
    restarted.close()
    failing = journal_source(tmp_path, storage)
    try:
        with pytest.raises(RuntimeError, match="journalctl exited with 1"):
            collect(failing)
    finally:
        failing.close()


def test_journal_entries_the_two_parsers_disagreed_on(tmp_path: Path) -> None:
    """One parser for auth_log and io_errors: a byte array with stray values keeps its
    message (io_errors dropped the entry), and an entry without a time gets the time it
    was read, never a crash."""
    storage, out, _, _ = fake_journalctl(tmp_path)
    odd = [*b"I/O error, dev sdk, sector 1 op 0x0:(READ) \xff", 300, "x"]
    untimed = json.loads(journal_entry("I/O error, dev sdm, sector 2 op 0x0:(READ)", 1, "c2"))
    del untimed["__REALTIME_TIMESTAMP"]
    out.write_text(
        journal_entry(odd, 10**15, "c1")
        + json.dumps(untimed)
        + "\n"
        + json.dumps({"MESSAGE": "I/O error, dev sdn, sector 3"})
        + "\n"
    )
    before = time.time()
    source = journal_source(tmp_path, storage)
    try:
        found = {e.device: e for e in collect(source).io_errors}
        assert sorted(found) == ["sdk", "sdm"]  # the line without a cursor is skipped
        assert "\ufffd" in found["sdk"].last_message
        assert found["sdm"].last_error_at.seconds >= int(before)
    finally:
        source.close()


def test_journal_is_followed_after_the_catch_up_and_read_again_when_the_follower_exits(
    tmp_path: Path,
) -> None:
    storage, out, _, calls = fake_journalctl(tmp_path)
    out.write_text(journal_entry("I/O error, dev sdg, sector 1 op 0x0:(READ)", 10**15, "c1"))
    follow = Path(f"{out}.follow")
    follow.write_text(journal_entry("I/O error, dev sdh, sector 2 op 0x0:(READ)", 10**15, "c3"))
    source = journal_source(tmp_path, storage)
    try:
        out.write_text("")  # journald has nothing more before c3
        wait_for(lambda: "sdh" in counts(source), message="the followed entry")
        assert counts(source) == {"sdg": 1, "sdh": 1}
        follower = next(
            argv for argv in map(json.loads, calls.read_text().splitlines()) if "--follow" in argv
        )
        assert "--after-cursor=c1" in follower and "_TRANSPORT=kernel" in follower
        Path(f"{follow}.exit").touch()

        def follower_exit_reported() -> bool:
            try:
                collect(source)
            except RuntimeError as exc:
                assert "reading it again" in str(exc)
                return True
            return False

        wait_for(follower_exit_reported, message="the follower's exit reported")
        assert source.wait_rounds(2, timeout=30)
        assert counts(source) == {"sdg": 1, "sdh": 1}
        second_catch_up = [
            argv
            for argv in map(json.loads, calls.read_text().splitlines())
            if "--follow" not in argv
        ][1]
        assert "--after-cursor=c3" in second_catch_up
    finally:
        source.close()


def test_real_journalctl_without_journal_files(tmp_path: Path) -> None:
    storage = {
        "kernel_log": "journal",
        "journalctl": "/usr/bin/journalctl",
        "journal_directory": str(tmp_path),
        "sys_root": str(tmp_path),
    }
    source = journal_source(tmp_path, storage)
    try:
        assert len(collect(source).io_errors) == 0
    finally:
        source.close()


def test_journalctl_missing_is_a_clear_status(tmp_path: Path) -> None:
    storage = {"kernel_log": "journal", "journalctl": str(tmp_path / "nope")}
    source = journal_source(tmp_path, storage)
    try:
        with pytest.raises(RuntimeError, match=r"cannot read the kernel journal: .*nope not found"):
            collect(source)
    finally:
        source.close()


@pytest.mark.parametrize(
    ("storage", "needle"),
    [
        ({"kernel_log": "kern.log"}, 'storage.kernel_log: must be "journal" or an absolute'),
        ({"kernel_log": 1}, "storage.kernel_log: must be a string"),
        ({"journal_timeout": "forever"}, "storage.journal_timeout: not a duration"),
        ({"kernel_log_max_read_bytes": 10}, "storage.kernel_log_max_read_bytes: must be at least"),
        (
            {"kernel_log_max_read_bytes": "8 megs"},
            "storage.kernel_log_max_read_bytes: must be a si",
        ),
        ({"sys_root": False}, "storage.sys_root: must be a string"),
        ({"journal_directory": []}, "storage.journal_directory: must be a string"),
    ],
)
def test_io_errors_config_garbage(tmp_path: Path, storage: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        make_source("io_errors", {"storage": storage}, tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(kernel_lines()) | st.text(max_size=80), max_size=40))
def test_any_mix_of_kernel_lines_counts_without_error(lines: list[str]) -> None:
    counter = ErrorCounter()
    for line in lines:
        counter.feed(line, line_timestamp(line, 1.7e9) or 1.7e9)
    counter.flush()
    assert all(c.errors_total > 0 and len(c.last_message) <= 300 for c in counter.counts.values())
    assert (
        ErrorCounter.from_json(json.loads(json.dumps(counter.to_json()))).counts == counter.counts
    )


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2025-03-06T05:10:10+11:00", 1741198210.0),
        ("2025-03-05T18:10:10Z", 1741198210.0),
        ("2025-03-05T18:10:10.5+0000", 1741198210.5),
        ("2024-05-01T03:00:00.123456789Z", 1714532400.123456),
        ("2024-05-01T03:00:00.1234Z", 1714532400.1234),
    ],
)
def test_iso_times_as_tools_print_them(text: str, epoch: float) -> None:
    assert parse_iso_time(text) == pytest.approx(epoch, abs=1e-6)
