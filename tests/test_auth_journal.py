"""auth_log in journal mode: entries, cursor saved only in commit(), resumed with --after-cursor.

journald does not run in the test container, so `journalctl` is a stand-in
script (the source's `journalctl` key points at it) that prints entries in
journalctl's `-o json` shape and honours --after-cursor, then follows (sleeps).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dcguard.agent.sources import Source
from dcguard.v1 import collector_pb2 as pb
from tests.security_support import collect, make_source

DEADLINE = 20.0
FAKE = """#!{python}
import json, sys, time
args = sys.argv[1:]
with open({argv_log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
after = next((a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")), None)
entries = [json.loads(line) for line in open({entries!r})]
skipping = after is not None
limit = None
import os
if os.path.exists({exit_once!r}):  # crash after N entries, once (journald restarted)
    limit = int(open({exit_once!r}).read())
    os.unlink({exit_once!r})
printed = 0
for entry in entries:
    if limit is not None and printed >= limit:
        sys.stdout.flush()
        sys.exit(1)
    if skipping:
        skipping = entry.get("__CURSOR") != after
        continue
    if "__RAW__" in entry:
        sys.stdout.write(entry["__RAW__"] + "\\n")
    else:
        sys.stdout.write(json.dumps(entry) + "\\n")
    printed += 1
sys.stdout.flush()
time.sleep(3600)
"""


def entry(n: int, message: Any, ident: str = "sshd") -> dict[str, Any]:
    return {
        "__CURSOR": f"s=abc;i={n:x};b=boot;m=1;t=6200000000{n:04d};x=1",
        "__REALTIME_TIMESTAMP": str(1_700_000_000_000_000 + n * 1_000_000),
        "SYSLOG_FACILITY": "10",
        "SYSLOG_IDENTIFIER": ident,
        "_PID": "8375",
        "_HOSTNAME": "vps670291",
        "MESSAGE": message,
    }


def setup(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    (tmp_path / "entries.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    script = tmp_path / "journalctl"
    script.write_text(
        FAKE.format(
            python=sys.executable,
            argv_log=str(tmp_path / "argv.log"),
            entries=str(tmp_path / "entries.jsonl"),
            exit_once=str(tmp_path / "exit-once"),
        )
    )
    script.chmod(0o755)
    return script


def journal_source(tmp_path: Path, script: Path) -> Source:
    return make_source("auth_log", tmp_path / "state", mode="journal", journalctl=str(script))


def wait_events(source: Source, count: int, commit: bool = True) -> list[pb.SecurityEvent]:
    events: list[pb.SecurityEvent] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        report = collect(source, commit=False)
        events = list(report.events)
        if len(events) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if commit:
        source.commit()
    return events


# Messages from the real lines of fail2ban issue #4118 (tests/fixtures/auth, classic file).
MESSAGES = [
    "Invalid user admin from 152.42.134.109 port 48348",
    "pam_unix(sshd:auth): check pass; user unknown",
    "Failed password for invalid user admin from 152.42.134.109 port 48348 ssh2",
    "Connection closed by invalid user admin 152.42.134.109 port 48348 [preauth]",
]


def test_journal_entries_become_events_and_resume_after_the_cursor(tmp_path: Path) -> None:
    entries = [entry(i, message) for i, message in enumerate(MESSAGES)]
    script = setup(tmp_path, entries)
    source = journal_source(tmp_path, script)
    events = wait_events(source, 3)
    source.close()
    assert [e.type for e in events] == [
        "ssh_invalid_user",
        "ssh_login_failed",
        "ssh_disconnect_preauth",
    ]
    assert {e.source_address for e in events} == {"152.42.134.109"}
    assert events[0].time.seconds == 1_700_000_000
    assert events[0].process == "sshd[8375]"
    saved = json.loads((tmp_path / "state" / "auth_log.position.json").read_text())
    assert saved["cursor"] == entries[-1]["__CURSOR"]

    source = journal_source(tmp_path, script)
    assert list(collect(source).events) == []  # starts journalctl after the saved cursor
    deadline = time.monotonic() + DEADLINE
    while len((tmp_path / "argv.log").read_text().splitlines()) < 2:
        assert time.monotonic() < deadline, "journalctl was not started again"
        time.sleep(0.05)
    time.sleep(0.3)  # give a wrong (repeating) journalctl time to print; asserted below
    assert list(collect(source).events) == []  # nothing repeated after the restart
    source.close()
    argv = [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]
    assert "--lines=0" in argv[0]  # first start: from now on
    assert f"--after-cursor={entries[-1]['__CURSOR']}" in argv[1]  # restart: after the cursor


def test_journalctl_exiting_is_restarted_after_the_last_entry(tmp_path: Path) -> None:
    entries = [entry(i, f"Invalid user u{i} from 10.0.0.{i} port 22") for i in range(4)]
    script = setup(tmp_path, entries)
    (tmp_path / "exit-once").write_text("2")  # the first journalctl dies after 2 entries
    source = journal_source(tmp_path, script)
    users: list[str] = []
    deadline = time.monotonic() + DEADLINE
    while len(users) < 4 and time.monotonic() < deadline:
        try:
            users.extend(e.user for e in collect(source).events)
        except RuntimeError as exc:  # the exit is reported once, then journalctl restarts
            assert "journalctl exited" in str(exc)
        time.sleep(0.05)
    source.close()
    assert users == ["u0", "u1", "u2", "u3"]
    argv = [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]
    assert f"--after-cursor={entries[1]['__CURSOR']}" in argv[1]


def test_uncommitted_journal_events_are_read_again(tmp_path: Path) -> None:
    script = setup(tmp_path, [entry(i, m) for i, m in enumerate(MESSAGES)])
    source = journal_source(tmp_path, script)
    assert len(wait_events(source, 3, commit=False)) == 3  # never stored
    source.close()
    source = journal_source(tmp_path, script)
    assert len(wait_events(source, 3)) == 3
    source.close()


def test_hostile_journal_entries(tmp_path: Path) -> None:
    entries = [
        entry(
            0,
            [
                0x49,
                0x6E,
                0x76,
                0x61,
                0x6C,
                0x69,
                0x64,
                0x20,
                0x75,
                0x73,
                0x65,
                0x72,
                0x20,
                0xFF,
                0x00,
                0x20,
                0x66,
                0x72,
                0x6F,
                0x6D,
                0x20,
                0x31,
                0x30,
                0x2E,
                0x30,
                0x2E,
                0x30,
                0x2E,
                0x31,
            ],
        ),  # "Invalid user \xff\x00 from 10.0.0.1" as a byte array
        {"__RAW__": json.dumps(entry(1, "x" * 200_000))},  # oversized JSON line
        {"__RAW__": "not json at all"},
        entry(2, "Invalid user ok from 10.0.0.2"),
    ]
    script = setup(tmp_path, entries)
    source = make_source(
        "auth_log", tmp_path / "state", mode="journal", journalctl=str(script), max_line_bytes=65536
    )
    events = wait_events(source, 2)
    source.close()
    assert [e.source_address for e in events] == ["10.0.0.1", "10.0.0.2"]
    assert "\x00" not in events[0].user
    report = pb.Report()
    source.collect(report)
    assert report.security_stats.lines_oversized == 1


def test_identifier_forged_with_logger_is_tagged(tmp_path: Path) -> None:
    real = {**entry(0, "Failed password for root from 10.0.0.1 port 22 ssh2"), "_COMM": "sshd"}
    forged = {
        **entry(1, "Accepted password for root from 10.0.0.2 port 22 ssh2"),
        "_COMM": "logger",
    }  # `logger -t sshd ...` by any local user
    source = journal_source(tmp_path, setup(tmp_path, [real, forged]))
    events = wait_events(source, 2)
    source.close()
    assert [list(e.tags) for e in events] == [[], ["identifier_mismatch"]]
    assert events[1].details["identifier_mismatch"] == "logger"


def test_missing_journalctl_is_a_source_error_not_a_crash(tmp_path: Path) -> None:
    source = make_source(
        "auth_log",
        tmp_path / "state",
        mode="journal",
        journalctl=str(tmp_path / "no-such-journalctl"),
    )
    deadline = time.monotonic() + DEADLINE
    try:
        with pytest.raises(RuntimeError, match="cannot run"):
            while time.monotonic() < deadline:  # the reader thread starts journalctl
                source.collect(pb.Report())
                time.sleep(0.02)
    finally:
        source.close()
