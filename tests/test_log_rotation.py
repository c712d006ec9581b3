"""auth_log across rotation, restarts and the per-report cap: every line exactly once."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from dcguard.agent.sources import Source
from dcguard.agent.sources.security.events import SecurityCounters
from dcguard.agent.sources.security.queue import EventQueue
from dcguard.v1 import collector_pb2 as pb
from tests.security_support import collect, make_source
from tests.support import wait_for

DEADLINE = 30.0


def line(i: int) -> bytes:
    return f"Dec 10 06:55:46 h sshd[1]: Invalid user u{i} from 10.0.0.1 port 22\n".encode()


def users(source: Source, commit: bool = True) -> list[int]:
    return [int(e.user[1:]) for e in collect(source, commit).events]


def auth_source(
    tmp_path: Path, log: Path, settings: dict[str, Any] | None = None, **keys: Any
) -> Source:
    return make_source(
        "auth_log", tmp_path / "state", settings, path=str(log), start_at="beginning", **keys
    )


class Writer(threading.Thread):
    """Appends numbered lines like rsyslog, rotating by rename and copytruncate as it goes."""

    def __init__(
        self, log: Path, count: int, rotate_every: int, seen: list[int] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.log, self.count, self.rotate_every = log, count, rotate_every
        self.rotations = 0
        self.seen = seen
        self.last_rotation = 0

    def run(self) -> None:
        handle = open(self.log, "ab", buffering=0)  # noqa: SIM115 - reopened on rotation
        reopen_in = -1
        try:
            for i in range(self.count):
                handle.write(line(i))
                if reopen_in == 0:  # the HUP arrives: the writer reopens the path
                    handle.close()
                    handle = open(self.log, "ab", buffering=0)  # noqa: SIM115
                reopen_in -= 1
                if i and i % self.rotate_every == 0:
                    self._wait_for_reader()
                    reopen_in = self._rotate()
                    self.last_rotation = i
                if i % 50 == 0:
                    time.sleep(0.002)
        finally:
            handle.close()

    def _wait_for_reader(self) -> None:
        """Rotations are hours apart on a server, reads seconds apart: the reader has moved
        on to the current file (past the late writes of the last rename) before the next
        rotation. It may still be hundreds of lines behind, so copytruncate recovery and
        late writes are exercised. Two rotations between two reads (the first file not yet
        opened when it is copytruncated) lose data with any tailer: not tested.
        """
        deadline = time.monotonic() + DEADLINE
        while (
            self.seen is not None
            and len(self.seen) < self.last_rotation + 10
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)

    def _rotate(self) -> int:
        """Rotate; returns after how many more lines the writer reopens (-1: never needed)."""
        self.rotations += 1
        rotated = Path(f"{self.log}.1")
        if rotated.exists():
            rotated.replace(f"{self.log}.2")
        if self.rotations % 2:  # rename, like logrotate's default + postrotate HUP:
            self.log.replace(rotated)  # the writer keeps appending to the old file a while
            return 5
        shutil.copyfile(self.log, rotated)  # copytruncate
        os.truncate(self.log, 0)
        return -1


def test_rename_and_copytruncate_while_running_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.touch()
    source = auth_source(tmp_path, log)
    total = 3000
    seen: list[int] = []
    writer = Writer(log, total, rotate_every=400, seen=seen)
    writer.start()
    deadline = time.monotonic() + DEADLINE
    while len(seen) < total and time.monotonic() < deadline:
        seen.extend(users(source))
        time.sleep(0.005)
    writer.join(DEADLINE)
    seen.extend(users(source))
    assert writer.rotations >= 6
    assert seen == list(range(total))


def test_old_file_is_finished_before_switching(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    old = open(log, "ab", buffering=0)  # noqa: SIM115
    old.write(line(0))
    source = auth_source(tmp_path, log)
    assert users(source) == [0]
    log.replace(tmp_path / "auth.log.1")
    old.write(line(1))  # written after the rename, before the HUP
    assert users(source) == [1]
    old.write(line(2)[:-1])  # a last line without its newline
    assert users(source) == []  # no new file yet: the partial line may grow
    (tmp_path / "auth.log").write_bytes(line(3))
    old.close()
    assert users(source) + users(source) == [2, 3]
    source.close()


def test_copytruncate_refilled_past_the_read_position_is_detected(tmp_path: Path) -> None:
    """The file grew back beyond where we were before we looked: only the first bytes
    (fingerprinted from what was read, not re-read later) reveal the truncation."""
    log = tmp_path / "auth.log"
    writer = open(log, "ab", buffering=0)  # noqa: SIM115 - copytruncate keeps the writer's fd
    writer.write(line(0))
    source = auth_source(tmp_path, log)
    assert users(source) == [0]
    writer.write(line(1) + line(2))
    shutil.copyfile(log, tmp_path / "auth.log.1")
    os.truncate(log, 0)
    writer.write(b"".join(line(i) for i in range(3, 9)))  # longer than before
    writer.close()
    assert users(source) + users(source) == list(range(1, 9))


def test_restart_between_collect_and_commit_rereads(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(line(i) for i in range(5)))
    source = auth_source(tmp_path, log)
    assert users(source) == [0, 1, 2, 3, 4]  # committed
    with log.open("ab") as handle:
        handle.write(b"".join(line(i) for i in range(5, 8)))
    assert users(source, commit=False) == [5, 6, 7]  # report never stored: agent dies
    source.close()
    source = auth_source(tmp_path, log)
    assert users(source) == [5, 6, 7]  # re-read, not lost
    source.close()
    source = auth_source(tmp_path, log)
    assert users(source) == []  # committed: never again


def test_collect_without_commit_hands_out_the_same_events_again(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(line(0))
    source = auth_source(tmp_path, log)
    assert users(source, commit=False) == [0]  # delivery failed, no commit
    with log.open("ab") as handle:
        handle.write(line(1))
    assert users(source) == [0, 1]
    assert users(source) == []


def test_a_failed_collect_does_not_commit_the_previous_hand_out() -> None:
    """Report 1 not stored; report 2's collect failed (its part dropped) but report 2 is stored:
    the commit after it must not drop report 1's events, which no stored report carries."""
    queue: EventQueue[int] = EventQueue(10, 100, SecurityCounters(), tail=0)
    queue.push(pb.SecurityEvent(type="ssh_invalid_user"), start=0)
    queue.set_tail(1)
    queue.hand_out(pb.Report())  # report 1, never stored
    queue.withdraw()  # what every source's collect() does first
    # ... the source then raises: nothing handed out for report 2 ...
    assert queue.commit() == (False, None)
    assert len(queue) == 1
    report = pb.Report()
    queue.hand_out(report)
    assert len(report.events) == 1
    assert queue.commit() == (True, 1)
    assert len(queue) == 0


def test_rotation_while_stopped_is_followed_by_inode(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(line(0))
    source = auth_source(tmp_path, log)
    assert users(source) == [0]
    source.close()
    with log.open("ab") as handle:
        handle.write(line(1))
    log.replace(tmp_path / "auth.log.1")
    log.write_bytes(line(2))
    source = auth_source(tmp_path, log)
    assert users(source) + users(source) == [1, 2]


def test_copytruncate_while_stopped_reads_the_rest_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(line(0))
    source = auth_source(tmp_path, log)
    assert users(source) == [0]
    source.close()
    with log.open("ab") as handle:
        handle.write(line(1))
    shutil.copyfile(log, tmp_path / "auth.log.1")
    os.truncate(log, 0)
    with log.open("ab") as handle:
        handle.write(line(2) + line(3))
    source = auth_source(tmp_path, log)
    assert users(source) + users(source) == [1, 2, 3]


def test_events_over_the_cap_wait_for_the_next_report(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(line(i) for i in range(25)))
    source = auth_source(tmp_path, log, {"max_events_per_report": 10})
    first = collect(source)
    assert [int(e.user[1:]) for e in first.events] == list(range(10))
    assert first.security_stats.events_deferred == 15
    assert users(source) == list(range(10, 20))
    assert users(source, commit=False) == list(range(20, 25))
    source.close()
    source = auth_source(tmp_path, log, {"max_events_per_report": 10})
    assert users(source) == list(range(20, 25))  # the uncommitted tail, once


def test_byte_budget_caps_a_report_of_large_events(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    big = [
        f"Dec 10 06:55:46 h sshd[1]: Invalid user u{i}{'x' * 1500} from 10.0.0.1 port 2\n"
        for i in range(10)
    ]
    log.write_text("".join(big))
    source = auth_source(tmp_path, log, {"max_event_bytes_per_report": 8192})
    sizes = []
    total = 0
    for _ in range(10):
        report = collect(source)
        if not report.events:
            break
        sizes.append(sum(e.ByteSize() for e in report.events))
        total += len(report.events)
    assert total == 10
    assert len(sizes) > 1 and all(size <= 8192 for size in sizes)


def test_a_multi_event_line_split_by_the_cap_survives_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    repeated = (
        b"Dec 10 07:13:56 h sshd[2]: message repeated 5 times: [ Failed password for "
        b"root from 5.36.59.76 port 42393 ssh2]\n"
    )
    log.write_bytes(line(0) + repeated + line(1))
    settings = {"max_events_per_report": 3}
    source = auth_source(tmp_path, log, settings)
    assert len(collect(source).events) == 3  # u0 + 2 of the 5 repeats
    source.close()
    source = auth_source(tmp_path, log, settings)
    rest = [e.type for e in collect(source).events] + [e.type for e in collect(source).events]
    assert rest == ["ssh_login_failed"] * 3 + ["ssh_invalid_user"]


def test_read_ahead_is_bounded_by_the_pending_queue(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(line(i) for i in range(500)))
    settings = {"max_events_per_report": 5, "max_pending_events": 20}
    source = auth_source(tmp_path, log, settings)
    report = collect(source, commit=False)
    assert len(report.events) == 5
    assert report.security_stats.lines_read <= 20  # not the whole file
    seen: list[int] = []
    for _ in range(200):
        seen.extend(users(source))
        if len(seen) == 500:
            break
    assert seen == list(range(500))


def test_start_at_end_skips_history_on_first_start(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(line(0))
    source = make_source("auth_log", tmp_path / "state", path=str(log))  # default: end
    assert users(source) == []
    with log.open("ab") as handle:
        handle.write(line(1))
    assert users(source) == [1]


def test_real_agent_delivers_lines_read_during_an_outage_exactly_once(
    collector: Any, make_agent: Any, tmp_path: Path
) -> None:
    """dcguard-agent run, as a process: the read position advances only once the report
    carrying the lines is durably spooled, so lines read while the collector is
    unreachable survive a kill -9 and reach the collector once, not twice, not never."""
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(line(i) for i in range(5)))
    extra = (
        "[sources]\nfim = false\nports = false\n"
        f'[security.auth_log]\npath = "{log}"\nstart_at = "beginning"\n'
    )
    position = tmp_path / "agent" / "state" / "auth_log.position.json"
    unreachable = make_agent(["127.0.0.1:9"], extra_config=extra)  # nothing listens there
    unreachable.start()
    wait_for(lambda: "delivery failing" in unreachable.log(), message="delivery to fail")
    wait_for(
        lambda: (
            position.exists()
            and json.loads(position.read_text())["checkpoint"]["offset"] == log.stat().st_size
        ),
        message="the position to reach the end (spooled)",
    )
    unreachable.kill()

    agent = make_agent([collector.grpc_address], extra_config=extra)  # same state dir
    agent.start()

    def invalid_users() -> float:
        samples = collector.metrics()
        return sum(
            v
            for (name, labels), v in samples.items()
            if name == "dcguard_security_events_total" and ("type", "ssh_invalid_user") in labels
        )

    wait_for(lambda: invalid_users() >= 5, message="the outage's events at the collector")
    time.sleep(1)  # a few more cycles: nothing may arrive twice
    agent.kill()
    assert invalid_users() == 5
