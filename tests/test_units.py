"""Small parts with sharp edges: durations, mount parsing, stuck mounts, label escaping."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcguard.agent.sources.filesystem import FilesystemSource, StatWatcher, parse_mounts
from dcguard.collector.exposition.text import escape_label_value, format_value
from dcguard.common.durations import format_duration, parse_duration
from dcguard.v1 import collector_pb2 as pb
from tests.mounts import tmpfs
from tests.support import parse_metrics


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15),
        ("500ms", 0.5),
        ("26h", 93600),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1w", 604800),
        ("0", 0),
        ("1y", 365 * 86400),
        ("2m3s4ms", 123.004),
    ],
)
def test_durations_as_prometheus_writes_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15", "s", "1.5s", "-1s", "15 s", "1s1h", "1h1h", "5sec"])
def test_not_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_durations_round_trip(millis):
    assert parse_duration(format_duration(millis / 1000)) == pytest.approx(millis / 1000)


MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/mapper/vg0-root / ext4 rw,relatime,errors=remount-ro 0 0
/dev/sda1 /boot ext4 rw,relatime 0 0
/dev/md0 /srv/My\\040Data xfs ro,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=1618044k,mode=755 0 0
broken line
/dev/sdb1 /boot ext2 rw 0 0
"""


def test_mount_table_parsing_decodes_escapes_and_later_mounts_win():
    mounts = {m.mountpoint: m for m in parse_mounts(MOUNTS)}
    assert mounts["/srv/My Data"].device == "/dev/md0"
    assert mounts["/srv/My Data"].readonly
    assert mounts["/boot"].device == "/dev/sdb1"  # mounted over the first /boot
    assert not mounts["/"].readonly
    assert "broken" not in " ".join(mounts)


@given(st.text())
def test_mount_parsing_never_raises(text):
    parse_mounts(text)


def test_filesystem_source_skips_pseudo_filesystems(tmp_path: Path):
    from dcguard.agent.sources import SourceContext
    from dcguard.agent.sources.filesystem import create
    from dcguard.common.config import Table
    from dcguard.v1 import collector_pb2 as pb

    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs {tmp_path} tmpfs rw 0 0\n"
    )
    source = create(
        Table({"filesystem": {"mounts_file": str(mounts)}}), SourceContext("h", 15, tmp_path)
    )
    report = pb.Report()
    source.collect(report)
    assert [fs.mountpoint for fs in report.filesystems] == ["/"]
    root = os.statvfs("/")
    assert report.filesystems[0].size_bytes == root.f_blocks * root.f_frsize


def test_the_mount_table_is_read_again_on_every_mount_remount_and_unmount(tmp_path):
    # tmpfs is excluded by default; this source reports it so a test can mount one.
    # statvfs says "read-write" always: only the table can say read-only.
    writable = os.statvfs_result((4096,) * 2 + (0,) * 8)
    source = FilesystemSource(
        Path("/proc/self/mounts"),
        frozenset({"proc", "sysfs"}),
        re.compile(r"(?!)"),
        StatWatcher(timeout=5, statvfs=lambda path: writable),
    )
    place = str(tmp_path / "m")

    def seen() -> dict[str, bool]:
        report = pb.Report()
        source.collect(report)
        return {fs.mountpoint: fs.readonly for fs in report.filesystems}

    try:
        assert place not in seen()
        with tmpfs(tmp_path / "m"):
            assert seen()[place] is False
            assert seen()[place] is False  # unchanged: from the cached table
            subprocess.run(["mount", "-o", "remount,ro", place], check=True, timeout=60)
            assert seen()[place] is True
        assert place not in seen()
    finally:
        source.close()


def test_a_hung_statvfs_is_reported_and_not_waited_on_again():
    release = threading.Event()
    calls: list[str] = []

    def hanging_statvfs(path: str) -> os.statvfs_result:
        calls.append(path)
        if path == "/mnt/nfs":
            release.wait(30)
        return os.statvfs("/")

    watcher = StatWatcher(timeout=0.2, statvfs=hanging_statvfs)
    started = time.monotonic()
    assert watcher.stat("/mnt/nfs") == "timeout"
    assert time.monotonic() - started < 5
    assert not isinstance(watcher.stat("/"), str)
    # Still stuck: reported at once, no second thread piles up on the mount.
    assert watcher.stat("/mnt/nfs") == "timeout"
    assert calls.count("/mnt/nfs") == 1
    release.set()
    deadline = time.monotonic() + 10
    while watcher.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not isinstance(watcher.stat("/mnt/nfs"), str)


def test_one_statvfs_worker_serves_every_call_until_one_gets_stuck():
    release = threading.Event()
    threads: list[threading.Thread] = []

    def statvfs(path: str) -> os.statvfs_result:
        threads.append(threading.current_thread())
        if path == "/mnt/nfs":
            release.wait(30)
        return os.statvfs("/")

    watcher = StatWatcher(timeout=0.2, statvfs=statvfs)
    for _ in range(20):
        assert not isinstance(watcher.stat("/"), str)
    assert len(set(threads)) == 1  # not a thread per call
    assert watcher.stat("/mnt/nfs") == "timeout"
    stuck = threads[-1]
    # The stuck worker is replaced once; the replacement serves every later call.
    for _ in range(5):
        assert not isinstance(watcher.stat("/"), str)
    assert len(set(threads)) == 2 and stuck.is_alive()
    release.set()
    stuck.join(10)
    assert not stuck.is_alive()  # it exits once its call returns
    assert not isinstance(watcher.stat("/mnt/nfs"), str)
    assert len(set(threads)) == 2
    watcher.close()


def test_a_statvfs_that_raises_something_else_is_reported_and_the_worker_lives_on():
    def statvfs(path: str) -> os.statvfs_result:
        if path == "/bad":
            raise ValueError("embedded null byte")
        return os.statvfs("/")

    watcher = StatWatcher(timeout=1, statvfs=statvfs)
    assert watcher.stat("/bad") == "ValueError: embedded null byte"
    assert not isinstance(watcher.stat("/"), str)
    assert watcher.stuck() == set()
    watcher.close()


def test_statvfs_errors_are_reported_as_text():
    watcher = StatWatcher(timeout=1)
    assert watcher.stat("/definitely/not/here") == "No such file or directory"


@given(st.text())
def test_any_label_value_survives_the_exposition_format(value):
    text = f'm{{host="{escape_label_value(value)}"}} 1\n'
    samples = parse_metrics(text)
    assert list(samples) == [("m", frozenset({("host", value)}))]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "1"),
        (3, "3"),
        (2.0, "2"),
        (0.25, "0.25"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
        (1e20, "1e+20"),
    ],
)
def test_value_formatting(value, text):
    assert format_value(value) == text
