"""auth_log: real auth.log / secure lines give the right events; hostile input never crashes it."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.agent.sources.security.authparse import parse_line, syslog_time
from dcguard.agent.sources.security.events import bare_ip
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb
from tests.security_support import collect, make_source
from tests.support import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "auth"
NOW = time.time()

# (fixture file, exact line prefix that identifies the real line) -> expected event fields.
# The fixture files are verbatim copies of /work/shared/corpus/auth-*.log (sources in SOURCES.md).
CASES = [
    (
        "classic",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster",
        ("ssh_invalid_user", "low", "T1110", "webmaster", "173.234.31.186"),
    ),
    (
        "classic",
        "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster",
        ("ssh_login_failed", "low", "T1110", "webmaster", "173.234.31.186"),
    ),
    (
        "classic",
        "Dec 10 06:55:48 LabSZ sshd[24200]: Connection closed by 173.234.31.186",
        ("ssh_disconnect_preauth", "info", "", "", "173.234.31.186"),
    ),
    (
        "classic",
        "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu",
        ("ssh_login_accepted", "info", "T1078", "fztu", "119.137.62.142"),
    ),
    (
        "classic",
        "Jul  3 14:59:17 host sshd-session[1571]: Failed password for root",
        ("ssh_login_failed", "medium", "T1110", "root", "192.0.2.1"),
    ),
    (
        "classic",
        "Nov 28 09:16:03 srv sshd[32307]: Accepted publickey for git",
        ("ssh_login_accepted", "info", "T1078", "git", "192.0.2.1"),
    ),
    (
        "classic",
        "Nov 23 21:50:37 myhost sshd[21810]: error: maximum authentication",
        ("ssh_disconnect_preauth", "low", "T1110", "root", "61.0.0.1"),
    ),
    (
        "classic",
        "Jul 17 23:03:05 srv sshd[1296]: Connection closed by authenticating user root",
        ("ssh_disconnect_preauth", "info", "", "root", "192.0.2.10"),
    ),
    (
        "classic",
        "Jun  6 04:17:04 host sshd[1189074]: Invalid user  from",
        ("ssh_invalid_user", "low", "T1110", "", "192.0.2.68"),
    ),
    (
        "classic",
        "Feb 19 10:38:14 myhost sshd[3355]: Disconnected from invalid user ftp",
        ("ssh_disconnect_preauth", "info", "", "ftp", "92.255.85.135"),
    ),
    (
        "classic",
        "Feb 8 17:15:01 hostname sshd[1478159]: Connection reset",
        ("ssh_disconnect_preauth", "info", "", "root", "80.94.92.63"),
    ),
    (
        "classic",
        "Feb 22 10:50:01 precise32 sudo:  vagrant : TTY=pts/0",
        ("sudo_command", "low", "T1548.003", "vagrant", ""),
    ),
    (
        "classic",
        "Feb 24 00:12:42 precise32 sudo:      tsg : 3 incorrect password attempts",
        ("sudo_auth_failure", "medium", "T1548.003", "tsg", ""),
    ),
    (
        "classic",
        "Feb 24 00:13:02 precise32 sudo:      tsg : user NOT in sudoers",
        ("sudo_auth_failure", "high", "T1548.003", "tsg", ""),
    ),
    (
        "classic",
        "Feb 24 00:12:02 precise32 groupadd[4480]: new group: name=tsg",
        ("group_created", "low", "T1098", "", ""),
    ),
    (
        "classic",
        "Feb 24 00:12:02 precise32 useradd[4484]: new user: name=tsg",
        ("user_created", "medium", "T1136", "tsg", ""),
    ),
    (
        "classic",
        "Feb 24 00:12:07 precise32 passwd[4491]: pam_unix(passwd:chauthtok)",
        ("password_changed", "low", "T1098", "tsg", ""),
    ),
    (
        "classic",
        "Feb 24 00:12:14 precise32 su[4496]: Successful su for tsg by root",
        ("su_success", "low", "T1078", "root", ""),
    ),
    (
        "classic",
        "Dec  1 16:22:16 ip-10-0-0-220 gpasswd[3246]: user bart added by root",
        ("group_member_added", "high", "T1098", "bart", ""),
    ),
    (
        "rfc3339",
        "2024-07-09T15:00:29.099504+02:00 antoine-VirtualBox sshd[19778]: Accepted",
        ("ssh_login_accepted", "info", "T1078", "antoine", "127.0.0.1"),
    ),
    (
        "rfc3339",
        "2024-07-09T15:39:31.205662+02:00 antoine-VirtualBox sshd[3411]: Failed",
        ("ssh_login_failed", "low", "T1110", "antoine", "192.168.56.1"),
    ),
    (
        "rfc3339",
        "2015-04-16T18:02:50.568798+00:00 host sshd[2716]: Connection closed",
        ("ssh_disconnect_preauth", "info", "", "", "192.0.2.112"),
    ),
    (
        "rfc3339",
        "2023-11-14T00:20:42.738197+01:00 myserver sshd[1112652]: User root",
        ("ssh_invalid_user", "low", "T1110", "root", "192.168.1.1"),
    ),
    (
        "rhel",
        "Feb 22 16:45:20 slave22 sshd[2738]: Failed password for root",
        ("ssh_login_failed", "medium", "T1110", "root", "202.109.143.106"),
    ),
    (
        "rhel",
        "Feb 22 16:48:04 slave22 sshd[2805]: Accepted publickey for drewr",
        ("ssh_login_accepted", "info", "T1078", "drewr", "69.245.39.97"),
    ),
    (
        "rhel",
        "Jul 25 11:23:58 AliYun sshd[2565]: Accepted password for root",
        ("ssh_login_accepted", "high", "T1078", "root", "113.247.47.201"),
    ),
    (
        "rhel",
        "Aug 18 11:31:33 server.final.lioncomputer.ir su[3037]: FAILED SU",
        ("su_failure", "medium", "T1110", "elysium", ""),
    ),
    (
        "rhel",
        "Oct 14 16:49:59 dlig userdel[1619336]: delete user 'jce'",
        ("user_deleted", "medium", "T1531", "jce", ""),
    ),
    (
        "rhel",
        "Oct 19 12:54:40 plielk0 usermod[7730]: change user 'acris'",
        ("user_modified", "low", "T1098", "acris", ""),
    ),
    (
        "rhel",
        "Feb 22 11:47:05 localhost useradd[6995]: new user: name=apache",
        ("user_created", "medium", "T1136", "apache", ""),
    ),
    (
        "rhel",
        "Dec 30 19:36:11 rheltest sudo: cplummer : TTY=pts/2",
        ("sudo_command", "low", "T1548.003", "cplummer", ""),
    ),
]
FILES = {
    "classic": "auth-debian-ubuntu-classic.log",
    "rfc3339": "auth-debian12-ubuntu24-rfc3339.log",
    "rhel": "auth-rhel-secure.log",
}


def _line(kind: str, prefix: str) -> str:
    for line in (FIXTURES / FILES[kind]).read_text().splitlines():
        if line.startswith(prefix):
            return line
    raise AssertionError(f"fixture line not found: {prefix}")


@pytest.mark.parametrize(("kind", "prefix", "expected"), CASES, ids=[c[1][:50] for c in CASES])
def test_real_lines_give_the_right_event(
    kind: str, prefix: str, expected: tuple[str, str, str, str, str]
) -> None:
    parsed = parse_line(_line(kind, prefix), NOW)
    assert parsed is not None
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert (event.type, event.severity, event.technique, event.user, event.address) == expected


# No real capture of these exists in the corpus (see its README, "Missing"): the lines are
# built from shadow-utils' own SYSLOG format strings (useradd.c, usermod.c, groupdel.c) and
# PAM's pam_unix "password changed for %s", with the classic Debian prefix.
SHADOW_FORMAT_CASES = [
    ("usermod[900]: add 'bob' to group 'sudo'", ("group_member_added", "high", "bob")),
    ("usermod[900]: add 'bob' to shadow group 'sudo'", None),  # same change, gshadow side
    ("useradd[901]: add 'eve' to group 'audio'", ("group_member_added", "medium", "eve")),
    (
        "useradd[901]: new user: name=eve, UID=0, GID=0, home=/root, shell=/bin/sh, "
        "from=/dev/pts/0",
        ("user_created", "critical", "eve"),
    ),
    ("groupdel[902]: group 'ops' removed", ("group_deleted", "low", "")),
    ("groupdel[902]: group 'ops' removed from /etc/group", None),
    ("usermod[903]: change user name 'old' to 'new'", ("user_modified", "medium", "new")),
    ("usermod[903]: change user 'bob' password", ("password_changed", "low", "bob")),
    ("usermod[903]: lock user 'bob' password", ("user_modified", "low", "bob")),
    (
        "chpasswd[904]: pam_unix(chpasswd:chauthtok): password changed for root",
        ("password_changed", "medium", "root"),
    ),
]


@pytest.mark.parametrize(
    ("message", "expected"), SHADOW_FORMAT_CASES, ids=[c[0][:40] for c in SHADOW_FORMAT_CASES]
)
def test_account_lines_in_shadow_utils_formats(
    message: str, expected: tuple[str, str, str] | None
) -> None:
    parsed = parse_line(f"Nov 23 21:00:00 db01 {message}", NOW)
    assert parsed is not None
    if expected is None:
        assert parsed.events == []  # recognised, but the same change as another line
        return
    assert [(e.type, e.severity, e.user) for e in parsed.events] == [expected]


# sshd's auth_log() writes "<Accepted|Failed> <method>[/<submethod>] for [invalid user ]<user>
# from <addr> port <n> ssh2[: <extra>]": the methods are the ones sshd registers (auth2.c:
# none, publickey, password, keyboard-interactive, hostbased, gssapi-with-mic; Debian adds
# gssapi-keyex), keyboard-interactive with its PAM or BSD-auth submethod.
SSHD_METHODS = (
    "none",
    "password",
    "publickey",
    "keyboard-interactive/pam",
    "keyboard-interactive/bsdauth",
    "hostbased",
    "gssapi-with-mic",
    "gssapi-keyex",
)


def _real_sshd_logins() -> list[str]:
    """Every real "Accepted ..." or "Failed ..." sshd line of the three fixture files."""
    lines = []
    for name in FILES.values():
        for line in (FIXTURES / name).read_text().splitlines():
            if re.search(r"sshd(?:-session)?\[\d+\]: (?:Accepted|Failed) \S+ for ", line):
                lines.append(line)
    return lines


@pytest.mark.parametrize("line", _real_sshd_logins())
def test_accepted_and_failed_know_the_same_methods(line: str) -> None:
    """Each real login line, with its outcome turned over, still gives its method back."""
    if " Accepted " in line:
        turned = line.replace(" Accepted ", " Failed ", 1)
    else:
        turned = line.replace(" Failed ", " Accepted ", 1).replace(" for invalid user ", " for ")
    for text, kind in (
        (line, "ssh_login_accepted" if " Accepted " in line else "ssh_login_failed"),
        (turned, "ssh_login_accepted" if " Accepted " in turned else "ssh_login_failed"),
    ):
        parsed = parse_line(text, NOW)
        assert parsed is not None, text
        (event,) = parsed.events
        assert event.type == kind
        method = re.search(r": (?:Accepted|Failed) (\S+) for ", text)
        assert method is not None and event.details["method"] == method[1]


@pytest.mark.parametrize("method", SSHD_METHODS)
@pytest.mark.parametrize("outcome", ["Accepted", "Failed"])
def test_every_sshd_method_is_known_to_both_outcomes(outcome: str, method: str) -> None:
    line = (
        f"2024-07-09T15:00:29.099504+02:00 db01 sshd[19778]: {outcome} {method} for root "
        "from 203.0.113.7 port 4711 ssh2"
    )
    parsed = parse_line(line, NOW)
    assert parsed is not None
    (event,) = parsed.events
    assert event.type == ("ssh_login_accepted" if outcome == "Accepted" else "ssh_login_failed")
    assert (event.user, event.address, event.details["method"]) == ("root", "203.0.113.7", method)


@pytest.mark.parametrize(
    "prefix",
    [
        "Dec 10 09:32:20 LabSZ sshd[24680]:",
        "2024-07-09T15:00:29.099504+02:00 antoine-VirtualBox sshd[19778]:",
        "Jul  3 14:59:17 host sshd-session[1571]:",
    ],
)
def test_empty_password_login_is_an_event(prefix: str) -> None:
    """ "Accepted none": sshd let an account without a password in (PermitEmptyPasswords)."""
    root = parse_line(f"{prefix} Accepted none for root from 203.0.113.7 port 4711 ssh2", NOW)
    assert root is not None
    assert [
        (e.type, e.severity, e.technique, e.user, e.address, e.details["method"])
        for e in root.events
    ] == [("ssh_login_accepted", "high", "T1078", "root", "203.0.113.7", "none")]
    guest = parse_line(f"{prefix} Accepted none for guest from 203.0.113.7 port 4711 ssh2", NOW)
    assert guest is not None
    assert [(e.type, e.severity) for e in guest.events] == [("ssh_login_accepted", "medium")]


def test_message_repeated_counts_every_failure() -> None:
    line = _line("classic", "Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times")
    parsed = parse_line(line, NOW)
    assert parsed is not None
    assert [e.type for e in parsed.events] == ["ssh_login_failed"] * 5
    assert {e.address for e in parsed.events} == {"5.36.59.76"}


def test_pam_lines_that_duplicate_sshd_failures_are_not_events() -> None:
    # Counting pam_unix's "authentication failure" as well as "Failed password" would
    # double every brute-force count at the collector.
    line = _line("classic", "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authent")
    parsed = parse_line(line, NOW)
    assert parsed is not None and parsed.events == []


def test_whole_corpus_through_the_source(tmp_path: Path) -> None:
    """Every real line of the corpus is recognised; only the # source comments are not."""
    total_events = 0
    for index, name in enumerate(FILES.values()):
        log_path = tmp_path / f"auth{index}.log"
        shutil.copy(FIXTURES / name, log_path)
        source = make_source(
            "auth_log", tmp_path / f"state{index}", path=str(log_path), start_at="beginning"
        )
        report = collect(source)
        source.close()
        lines = log_path.read_text().splitlines()
        comments = [line for line in lines if line.startswith("#") or not line.strip()]
        stats = report.security_stats
        assert stats.lines_read == len(lines)
        assert stats.lines_unrecognised == len(comments)
        total_events += len(report.events)
        for event in report.events:
            assert event.source == "auth_log"
            assert event.severity != pb.SEVERITY_UNSPECIFIED
            assert event.raw and event.time.seconds > 0
            assert event.process
    assert total_events == 109  # reviewed by hand: one per security-relevant line, repeats expanded


def test_comment_lines_are_counted_unrecognised(tmp_path: Path) -> None:
    log_path = tmp_path / "auth.log"
    log_path.write_text(
        "# not a syslog line\nDec 10 06:55:46 LabSZ sshd[1]: something new\n"
        "Dec 10 06:55:46 LabSZ sshd[1]: Invalid user a from 10.0.0.1 port 1\n"
    )
    source = make_source("auth_log", tmp_path / "state", path=str(log_path), start_at="beginning")
    report = collect(source)
    assert [e.type for e in report.events] == ["ssh_invalid_user"]
    assert report.security_stats.lines_read == 3
    assert report.security_stats.lines_unrecognised == 2


def test_classic_timestamp_year_is_inferred_across_new_year() -> None:
    jan_first = datetime(2027, 1, 1, 0, 5).timestamp()  # local time, like syslog
    when = syslog_time("Dec 31 23:59:58", None, jan_first)
    assert when is not None
    assert datetime.fromtimestamp(when).year == 2026
    assert syslog_time("Jan  1 00:04:00", None, jan_first) == datetime(2027, 1, 1, 0, 4).timestamp()


def test_rfc3339_timestamp_keeps_its_offset() -> None:
    when = syslog_time(None, "2024-07-09T15:00:29.099504+02:00", NOW)
    assert when == datetime(2024, 7, 9, 13, 0, 29, 99504, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "line",
    [
        "Dec 10 06:55:46 h sshd[1]: Invalid user a from 1.2.3.4 from 5.6.7.8 port 22",
        "Dec 10 06:55:46 h sshd[1]: Failed password for invalid user x from 1.2.3.4 port 2 ssh2"
        " from 5.6.7.8 port 4 ssh2",
        "Dec 10 06:55:46 h sshd[1]: Connection closed by invalid user x 1.2.3.4 port 5"
        " 5.6.7.8 port 7 [preauth]",
    ],
)
def test_forged_user_names_do_not_become_the_source_address(line: str) -> None:
    parsed = parse_line(line, NOW)
    assert parsed is not None
    assert parsed.events[0].address == "5.6.7.8"
    assert "1.2.3.4" in parsed.events[0].user


def test_hostile_input_is_capped_and_counted(tmp_path: Path) -> None:
    log_path = tmp_path / "auth.log"
    good = b"Dec 10 06:55:46 h sshd[1]: Invalid user ok from 10.0.0.1 port 1\n"
    with log_path.open("wb") as handle:
        handle.write(good)
        handle.write(
            b"Dec 10 06:55:46 h sshd[1]: Invalid user "
            + b"A" * 1_000_000
            + b" from 10.0.0.2 port 1\n"
        )  # a 1 MB line
        handle.write(
            b"Dec 10 06:55:46 h sshd[1]: Invalid user \xff\xfe\x00bad from 10.0.0.3 port 1\n"
        )
        handle.write(b"\x00" * 5000 + b"\n")
        handle.write(
            b"Dec 10 06:55:46 h sshd[1]: Invalid user " + b"B" * 10_000 + b" from 10.0.0.4 port 1\n"
        )  # long but under the line limit
        handle.write(good)
    source = make_source(
        "auth_log",
        tmp_path / "state",
        {"raw_max_bytes": 2048},
        path=str(log_path),
        start_at="beginning",
    )
    report = collect(source)
    stats = report.security_stats
    assert stats.lines_read == 6
    assert stats.lines_oversized == 1
    assert stats.lines_unrecognised == 1  # the NUL line
    assert [e.source_address for e in report.events] == [
        "10.0.0.1",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.1",
    ]
    for event in report.events:
        assert len(event.raw.encode()) <= 2048
        assert "\x00" not in event.raw and "\x00" not in event.user
    assert "\ufffd" in report.events[1].user


def test_oversized_line_is_never_held_whole(tmp_path: Path) -> None:
    log_path = tmp_path / "auth.log"
    log_path.write_bytes(b"x" * 5_000_000 + b"\n")
    source = make_source(
        "auth_log",
        tmp_path / "state",
        path=str(log_path),
        start_at="beginning",
        max_line_bytes=4096,
    )
    tailer_reads: list[int] = []
    report = collect(source)
    assert report.security_stats.lines_oversized == 1
    tailer = source._tailer  # type: ignore[attr-defined]
    assert len(tailer._buf) <= 4096 + 65536  # bounded by the limit plus one read chunk
    del tailer_reads


def test_missing_log_is_no_data_not_failure(tmp_path: Path) -> None:
    source = make_source(
        "auth_log", tmp_path / "state", path=str(tmp_path / "absent.log"), mode="file"
    )
    assert list(collect(source).events) == []
    assert not (tmp_path / "state" / "auth_log.position.json").exists()  # no bogus position
    (tmp_path / "absent.log").write_text(
        "Dec 10 06:55:46 h sshd[1]: Invalid user late from 10.0.0.9 port 1\n"
    )
    assert [e.user for e in collect(source).events] == ["late"]


def test_unreadable_log_is_a_source_error(tmp_path: Path) -> None:
    log_path = tmp_path / "auth.log"
    log_path.write_text("Dec 10 06:55:46 h sshd[1]: Invalid user a from 10.0.0.1 port 1\n")
    log_path.chmod(0)
    source = make_source("auth_log", tmp_path / "state", path=str(log_path), start_at="beginning")
    if os.access(log_path, os.R_OK):  # root reads anything: make the open fail another way
        log_path.unlink()
        log_path.mkdir()  # opening a directory for lines: EISDIR on read
        with pytest.raises(RuntimeError, match=r"cannot read .*auth\.log: Is a directory"):
            collect(source)
        return
    with pytest.raises(RuntimeError, match=r"cannot read .*auth\.log: Permission denied"):
        collect(source)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"mode": "tail"}, "security.auth_log.mode: must be one of auto, file, journal"),
        ({"start_at": 3}, "security.auth_log.start_at: must be a string"),
        ({"path": ""}, "security.auth_log.path: must not be empty"),
        ({"rotated": "x"}, "security.auth_log.rotated: must be a list of strings"),
        ({"max_line_bytes": 10}, "security.auth_log.max_line_bytes: must be at least 256"),
        ({"max_lines_per_collect": 0}, "max_lines_per_collect: must be at least 1"),
        ({"journalctl": ""}, "security.auth_log.journalctl: must not be empty"),
        ({"bogus": 1}, "security.auth_log.bogus: unknown key"),
    ],
)
def test_bad_config_is_one_clear_line(
    tmp_path: Path, keys: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_source("auth_log", tmp_path, **keys)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_events_per_report": 0}, "security.max_events_per_report: must be at least 1"),
        ({"max_pending_events": 5, "max_events_per_report": 10}, "security.max_pending_events"),
        ({"raw_max_bytes": "2 kilos"}, "security.raw_max_bytes: must be a size"),
        (
            {"max_event_bytes_per_report": 100},
            "security.max_event_bytes_per_report: must be at least",
        ),
        ({"typo": True}, "security.typo: unknown key"),
    ],
)
def test_bad_security_settings(tmp_path: Path, settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_source("auth_log", tmp_path, settings)


def _agent_config(tmp_path: Path, security: str) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[agent]\nhost = "db01"\ndepartment = "so-tu-phap"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
        "[sources]\nfim = false\nports = false\n" + security
    )
    return config


def test_agent_collect_prints_events_from_the_configured_log(tmp_path: Path) -> None:
    log_path = tmp_path / "secure"
    shutil.copy(FIXTURES / FILES["rhel"], log_path)
    config = _agent_config(
        tmp_path,
        f"[security]\nmax_events_per_report = 4\n"
        f'[security.auth_log]\npath = "{log_path}"\n'
        'start_at = "beginning"\n',
    )
    result = run_cli("dcguard.agent", "collect", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    events = report["events"]
    assert [e["type"] for e in events] == ["ssh_login_failed"] * 4  # capped at 4 per report
    assert events[0]["source_address"] == "202.109.143.106"
    assert events[0]["severity"] == "SEVERITY_MEDIUM"
    assert events[0]["technique"] == "T1110"
    stats = report["security_stats"]
    assert int(stats["events_deferred"]) > 0
    assert {s["name"]: s["success"] for s in report["sources"]}["auth_log"] is True


@pytest.mark.parametrize(
    ("security", "message"),
    [
        (
            '[security]\nmax_events_per_report = "lots"\n',
            "security.max_events_per_report: must be an integer",
        ),
        ('[security.auth_log]\nmode = "syslog"\n', "security.auth_log.mode: must be one of"),
        ('[security.fim]\npaths = ["relative"]\n', "security.fim.paths: must hold absolute paths"),
        ('[security.ports]\nprotocols = ["icmp"]\n', "security.ports.protocols"),
        ("[security]\nauth_log = 1\n", "security.auth_log: must be a table"),
    ],
)
def test_check_config_rejects_garbage_in_one_line(
    tmp_path: Path, security: str, message: str
) -> None:
    config = _agent_config(tmp_path, security)
    result = run_cli("dcguard.agent", "check-config", "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=40))
def test_arbitrary_bytes_never_crash_the_source(chunks: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "auth.log"
        log_path.write_bytes(b"\n".join(chunks) + b"\n")
        lines = (b"\n".join(chunks) + b"\n").count(b"\n")
        source = make_source(
            "auth_log",
            Path(tmp) / "state",
            path=str(log_path),
            start_at="beginning",
            max_line_bytes=256,
        )
        report = collect(source)
        source.close()
        stats = report.security_stats
        assert stats.lines_read == lines
        assert stats.lines_unrecognised + stats.lines_oversized <= lines
        for event in report.events:
            assert "\x00" not in event.raw and len(event.raw.encode()) <= 2048


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_sshd_messages_never_crash_the_parser(message: str) -> None:
    parsed = parse_line(f"Dec 10 06:55:46 h sshd[1]: {message}", NOW)
    for event in [] if parsed is None else parsed.events:
        assert event.address == "" or event.address == bare_ip(event.address)
