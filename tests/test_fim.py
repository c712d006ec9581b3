"""fim on real files in a temp dir: one event per change, no repeats after a restart."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources import Source
from dcguard.agent.sources.security.fimscan import RateLimiter, scan
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb
from tests.security_support import collect, make_source

DEADLINE = 20.0


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    root = tmp_path / "etc"
    (root / "sudoers.d").mkdir(parents=True)
    (root / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "sudoers.d" / "ops").write_text("%ops ALL=(ALL) ALL\n")
    (root / "motd").write_text("hello\n")
    return root


class Fim:
    """A fim source on the watched dir, with helpers that wait for complete scans."""

    def __init__(self, tmp_path: Path, watched: Path, **keys: Any) -> None:
        self.tmp_path, self.watched, self.keys = tmp_path, watched, keys
        self.source = self._make()

    def _make(self) -> Source:
        keys = {
            "paths": [str(self.watched)],
            "interval": "50ms",
            "package_locks": [str(self.tmp_path / "lock-frontend")],
            "package_logs": [str(self.tmp_path / "dpkg.log")],
            **self.keys,
        }
        return make_source("fim", self.tmp_path / "state", **keys)

    def restart(self) -> None:
        self.source.close()
        self.source = self._make()

    def next_events(self, commit: bool = True) -> list[pb.SecurityEvent]:
        """Events of every change made before this call (waits for two full scans)."""
        collect(self.source, commit=False)  # starts the scanner if needed
        target = self.source.scans + 2  # type: ignore[attr-defined]
        deadline = time.monotonic() + DEADLINE
        while self.source.scans < target:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "fim scan did not complete"
            time.sleep(0.02)
        return list(collect(self.source, commit).events)


@pytest.fixture
def fim(tmp_path: Path, watched: Path) -> Iterator[Fim]:
    helper = Fim(tmp_path, watched)
    yield helper
    helper.source.close()


def kinds(events: list[pb.SecurityEvent]) -> list[tuple[str, str]]:
    return [(e.type, Path(e.path).name) for e in events]


def test_first_scan_is_a_silent_baseline(fim: Fim) -> None:
    assert fim.next_events() == []


def test_modify_chmod_delete_create_one_event_each(fim: Fim, watched: Path) -> None:
    assert fim.next_events() == []
    (watched / "motd").write_text("changed\n")
    assert kinds(fim.next_events()) == [("file_modified", "motd")]
    old_mode = f"{(watched / 'passwd').stat().st_mode & 0o7777:04o}"
    (watched / "passwd").chmod(0o600)
    events = fim.next_events()
    assert kinds(events) == [("file_permissions_changed", "passwd")]
    assert events[0].technique == "T1098" and events[0].severity == pb.SEVERITY_HIGH
    assert events[0].details["old_mode"] == old_mode
    assert events[0].details["new_mode"] == "0600"
    (watched / "sudoers.d" / "ops").unlink()
    events = fim.next_events()
    assert kinds(events) == [("file_deleted", "ops")]
    assert events[0].technique == "T1548.003"
    (watched / "sudoers.d" / "backdoor").write_text("evil ALL=(ALL) NOPASSWD: ALL\n")
    events = fim.next_events()
    assert kinds(events) == [("file_created", "backdoor")]
    assert (
        events[0].details["new_sha256"]
        == hashlib.sha256(b"evil ALL=(ALL) NOPASSWD: ALL\n").hexdigest()
    )
    assert events[0].path == str(watched / "sudoers.d" / "backdoor")
    assert fim.next_events() == []  # nothing changed since: nothing reported


def test_world_writable_is_critical(fim: Fim, watched: Path) -> None:
    fim.next_events()
    (watched / "motd").chmod(0o666)  # world-writable: the insecure mode under test
    events = fim.next_events()
    assert kinds(events) == [("file_permissions_changed", "motd")]
    assert events[0].severity == pb.SEVERITY_CRITICAL


def test_owner_change(fim: Fim, watched: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root to chown (the dev container runs as root)")
    fim.next_events()
    os.chown(watched / "motd", 1234, 1234)
    events = fim.next_events()
    assert kinds(events) == [("file_owner_changed", "motd")]
    assert events[0].details["new_owner"] == "1234:1234"


def test_restart_does_not_repeat_committed_changes(fim: Fim, watched: Path) -> None:
    fim.next_events()
    (watched / "motd").write_text("changed\n")
    assert kinds(fim.next_events()) == [("file_modified", "motd")]
    fim.restart()
    assert fim.next_events() == []


def test_uncommitted_change_is_reported_again_after_restart(fim: Fim, watched: Path) -> None:
    fim.next_events()
    (watched / "motd").write_text("changed\n")
    assert kinds(fim.next_events(commit=False)) == [("file_modified", "motd")]
    fim.restart()  # the report carrying it was never stored
    assert kinds(fim.next_events()) == [("file_modified", "motd")]
    fim.restart()
    assert fim.next_events() == []


def test_change_while_stopped_is_reported_after_restart(fim: Fim, watched: Path) -> None:
    fim.next_events()
    fim.source.close()
    (watched / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nevil:x:0:0::/:/bin/sh\n")
    fim.restart()
    assert kinds(fim.next_events()) == [("file_modified", "passwd")]


def test_package_manager_log_tags_changes(fim: Fim, watched: Path, tmp_path: Path) -> None:
    fim.next_events()
    (tmp_path / "dpkg.log").write_text("2026-11-23 21:00:00 upgrade openssh-server\n")
    (watched / "motd").write_text("upgraded\n")
    events = fim.next_events()
    assert kinds(events) == [("file_modified", "motd")]
    assert list(events[0].tags) == ["package_update"]
    assert events[0].severity == pb.SEVERITY_LOW
    assert "dpkg.log" in events[0].details["package_manager"]


def test_package_manager_lock_tags_changes(fim: Fim, watched: Path, tmp_path: Path) -> None:
    fim.next_events()
    with open(tmp_path / "lock-frontend", "w") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)  # held like apt holds it (seen in /proc/locks)
        (watched / "passwd").write_text("root:x:0:0:root:/root:/bin/zsh\n")
        events = fim.next_events()
    assert kinds(events) == [("file_modified", "passwd")]
    assert list(events[0].tags) == ["package_update"]
    assert events[0].severity == pb.SEVERITY_LOW
    (watched / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    events = fim.next_events()  # lock released, log untouched: this one pages
    assert list(events[0].tags) == [] and events[0].severity == pb.SEVERITY_HIGH


def test_symlink_is_recorded_not_followed(fim: Fim, watched: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("secret\n")
    fim.next_events()
    (watched / "link").symlink_to(tmp_path / "outside")
    assert kinds(fim.next_events()) == [("file_created", "link")]
    (tmp_path / "outside").write_text("changed\n")  # not watched: the link target is outside
    assert fim.next_events() == []


def test_max_files_bounds_the_scan(tmp_path: Path, watched: Path) -> None:
    for i in range(30):
        (watched / f"f{i}").write_text(str(i))
    helper = Fim(tmp_path, watched, max_files=10)
    try:
        helper.next_events()
        baseline = (tmp_path / "state" / "fim-baseline.json").read_text()
        assert baseline.count('"sha256"') == 10
    finally:
        helper.source.close()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"paths": ["etc/passwd"]}, "security.fim.paths: must hold absolute paths"),
        ({"paths": "/etc"}, "security.fim.paths: must be a list of strings"),
        ({"interval": "soon"}, "security.fim.interval"),
        ({"hash_bytes_per_second": 0}, "security.fim.hash_bytes_per_second: must be at least 4096"),
        ({"max_files": -1}, "security.fim.max_files: must be at least 1"),
        ({"max_file_bytes": "big"}, "security.fim.max_file_bytes: must be a size like"),
        ({"package_locks": [1]}, "security.fim.package_locks: must be a list of strings"),
        ({"package_logs": "/var/log/dpkg.log"}, "security.fim.package_logs: must be a list"),
        ({"proc_locks": ""}, "security.fim.proc_locks: must not be empty"),
        ({"extra": 1}, "security.fim.extra: unknown key"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_source("fim", tmp_path, **keys)


class RecordingStop(threading.Event):
    """A stop Event that records how long the rate limiter asked to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False


def test_hashing_is_rate_limited_and_unchanged_files_are_not_rehashed(watched: Path) -> None:
    (watched / "big").write_bytes(b"x" * 300_000)
    stop = RecordingStop()
    now = [0.0]
    limiter = RateLimiter(100_000, stop, clock=lambda: now[0])  # the clock never moves
    first, _ = scan([str(watched)], {}, limiter, stop, 1000, 1 << 30)
    # 300 kB at 100 kB/s with no time passing: the limiter asked to wait ~3 s in total.
    assert sum(stop.waits) >= 2.9
    stop.waits.clear()
    second, _ = scan(
        [str(watched)], first, RateLimiter(100_000, stop, clock=lambda: now[0]), stop, 1000, 1 << 30
    )
    assert stop.waits == []  # (mtime, ctime, size, inode) unchanged: nothing re-read
    assert second == first
