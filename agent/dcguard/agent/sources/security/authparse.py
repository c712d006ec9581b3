"""Recognising authentication-log lines: sshd, sudo, su, shadow-utils and PAM password changes.

parse_line() turns one syslog line into zero or more EventSpecs, or None when
the line is not recognised (the caller counts those). Recognised noise
(session opened, pam_unix lines that duplicate sshd's own "Failed password")
gives an empty list so nothing is counted twice.

User names in sshd lines are attacker-controlled: a user named
"x from 1.2.3.4" must not become the source address. The patterns take the
user greedily up to the LAST " from <addr> port <n>", which sshd itself
appends, and the address must parse as an IP.
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from dcguard.agent.sources.security.events import bare_ip

__all__ = ["EventSpec", "Parsed", "parse_line", "parse_message", "syslog_time"]

PRIVILEGED_GROUPS = frozenset({"sudo", "wheel", "admin", "root", "adm"})
MAX_REPEAT = 100  # "message repeated N times" expands to at most this many events


@dataclass
class EventSpec:
    """What a recognised line means, before it becomes a SecurityEvent."""

    type: str
    severity: str
    technique: str = ""
    user: str = ""
    address: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class Parsed:
    when: float | None
    host: str
    process: str
    events: list[EventSpec]


_PREFIX = re.compile(
    r"^(?:(?P<classic>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (?P<host>\S+) (?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$",
    re.S,
)
_MONTHS = {
    name: index
    for index, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

_FROM = r" from (?P<addr>\S+)(?: port (?P<port>\d+))?"
R = re.compile


# One grammar for both outcomes of sshd's auth_log(): "<Accepted|Failed> <method>[/<sub>]
# for [invalid user ]<user> from <addr> port <n> ssh2[: <extra>]". The methods are the ones
# sshd registers (auth2.c; Debian adds gssapi-keyex); keyboard-interactive carries its
# PAM or BSD-auth submethod. A method known to one outcome and not the other loses events:
# "Accepted none" (an empty password) once gave no event at all.
_SSH_METHODS = (
    "none",
    "password",
    "publickey",
    "keyboard-interactive",
    "hostbased",
    "gssapi-with-mic",
    "gssapi-keyex",
)
_LOGIN = (
    r"^(?P<outcome>Accepted|Failed) (?P<method>(?:" + "|".join(_SSH_METHODS) + r")"
    r"(?:/[\w-]+)?) for (?P<invalid>invalid user )?(?P<user>.*)" + _FROM + r"(?: ssh2)?(?:: .*)?$"
)


def _ssh_rules() -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], EventSpec]]]:
    def login(m: re.Match[str]) -> EventSpec:
        user, method = m["user"], m["method"]
        details = {"method": method}
        if m["invalid"]:
            details["invalid_user"] = "true"
        if m["outcome"] == "Failed":
            return EventSpec(
                "ssh_login_failed",
                "medium" if user == "root" else "low",
                "T1110",
                user,
                m["addr"],
                details,
            )
        severity = "info"
        if user == "root":
            severity = "high" if method != "publickey" else "medium"
        elif method == "none":
            severity = "medium"  # an account with an empty password let someone in
        return EventSpec("ssh_login_accepted", severity, "T1078", user, m["addr"], details)

    def invalid(m: re.Match[str]) -> EventSpec:
        return EventSpec("ssh_invalid_user", "low", "T1110", m["user"], m["addr"])

    def not_allowed(m: re.Match[str]) -> EventSpec:
        return EventSpec(
            "ssh_invalid_user", "low", "T1110", m["user"], m["addr"], {"reason": "not_allowed"}
        )

    def preauth(
        reason: str, technique: str = "", severity: str = "info"
    ) -> Callable[[re.Match[str]], EventSpec]:
        def build(m: re.Match[str]) -> EventSpec:
            groups = m.groupdict()
            return EventSpec(
                "ssh_disconnect_preauth",
                severity,
                technique,
                groups.get("user") or "",
                groups.get("addr") or "",
                {"reason": reason},
            )

        return build

    who = r"(?:(?:invalid|authenticating) user (?P<user>.*) )?"
    return [
        (R(_LOGIN), login),
        (R(r"^Invalid user (?P<user>.*)" + _FROM + "$"), invalid),
        (R(r"^User (?P<user>.*)" + _FROM + r" not allowed because .*$"), not_allowed),
        (
            R(
                r"^error: maximum authentication attempts exceeded for (?:invalid user )?"
                r"(?P<user>.*)" + _FROM + r"(?: ssh2)? \[preauth\]$"
            ),
            preauth("too_many_failures", "T1110", "low"),
        ),
        (
            R(
                r"^Disconnecting " + r"(?:invalid|authenticating) user (?P<user>.*) (?P<addr>\S+)"
                r" port \d+: Too many authentication failures \[preauth\]$"
            ),
            preauth("too_many_failures", "T1110", "low"),
        ),
        (
            R(
                r"^Disconnecting: Too many authentication failures(?: for (?:invalid user )?"
                r"(?P<user>.*))? \[preauth\]$"
            ),
            preauth("too_many_failures", "T1110", "low"),
        ),
        # With a user the port is always logged: anchor on the LAST "<addr> port <n>".
        (
            R(r"^Connection (?:closed|reset) by " + who + r"(?P<addr>\S+) port \d+ \[preauth\]$"),
            preauth("connection_closed"),
        ),
        (
            R(r"^Connection (?:closed|reset) by (?P<addr>\S+) \[preauth\]$"),
            preauth("connection_closed"),
        ),
        (
            R(r"^Disconnected from " + who + r"(?P<addr>\S+) port \d+ \[preauth\]$"),
            preauth("disconnected"),
        ),
        (R(r"^Disconnected from (?P<addr>\S+) \[preauth\]$"), preauth("disconnected")),
        (
            R(r"^Received disconnect from (?P<addr>[^\s:]+|\S+)(?: port \d+)?:.*\[preauth\]$"),
            preauth("client_disconnect"),
        ),
        (
            R(r"^fatal: Timeout before authentication for (?P<addr>\S+)(?: port \d+)?$"),
            preauth("timeout"),
        ),
    ]


_SSH_NOISE = R(
    r"^(?:pam_unix\(sshd:|pam_succeed_if\(|PAM \d+ more authentication failure|PAM service\("
    r"|input_userauth_request|reverse mapping checking|Connection from |Server listening"
    r"|Received signal|error: kex_exchange_identification|fatal: Read from socket"
    r"|Received disconnect from |Disconnected from user |Connection closed by \S+ port \d+$"
    r"|Connection closed by \S+$|pam_systemd|Postponed |Starting session|Close session"
    r"|session (?:opened|closed)|authentication failure;|check pass;)"
)

_SUDO = R(
    r"^\s*(?P<user>\S+) : (?:(?P<attempts>\d+) incorrect password attempts? ; "
    r"|(?P<notin>user NOT in sudoers) ; |(?P<other>[^;=]+) ; )?"
    r"TTY=(?P<tty>[^;]*) ; PWD=(?P<pwd>[^;]*) ; USER=(?P<target>[^;]*) ;"
    r"(?: [A-Z]+=[^;]* ;)* COMMAND=(?P<command>.*)$",
    re.S,
)
_SUDO_NOISE = R(
    r"^(?:pam_unix\(sudo|pam_systemd|unable to execute|\s*\S+ : "
    r"(?:TTY|PWD)=|.*session (?:opened|closed))"
)
_SU_RULES = [
    (R(r"^Successful su for (?P<target>\S+) by (?P<user>\S+)$"), "su_success"),
    (R(r"^\(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)$"), "su_success"),
    (R(r"^FAILED SU \(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)$"), "su_failure"),
    (R(r"^FAILED su for (?P<target>\S+) by (?P<user>\S+)$"), "su_failure"),
]
_SU_NOISE = R(
    r"^(?:\+ \S+ \S+:\S+$|- \S+ \S+:\S+$|pam_unix\(su|pam_systemd|session |"
    r"authentication failure;|check pass;)"
)
_ACCOUNT_RULES: list[tuple[re.Pattern[str], str, str, str]] = [
    # (pattern, type, severity, technique); "target" names the account acted on.
    (
        R(
            r"^new user: name=(?P<target>[^,]*), UID=(?P<uid>\d+), GID=(?P<gid>\d+)"
            r"(?:, home=(?P<home>[^,]*))?(?:, shell=(?P<shell>[^,]*))?(?:, from=.*)?$"
        ),
        "user_created",
        "medium",
        "T1136",
    ),
    (R(r"^delete user '(?P<target>[^']*)'$"), "user_deleted", "medium", "T1531"),
    (R(r"^change user '(?P<target>[^']*)' password$"), "password_changed", "low", "T1098"),
    (
        R(r"^change user name '(?P<old_name>[^']*)' to '(?P<target>[^']*)'$"),
        "user_modified",
        "medium",
        "T1098",
    ),
    (R(r"^change user '(?P<target>[^']*)' (?P<what>.*)$"), "user_modified", "low", "T1098"),
    (
        R(r"^(?P<what>lock|unlock) user '(?P<target>[^']*)' password$"),
        "user_modified",
        "low",
        "T1098",
    ),
    (R(r"^changed user '(?P<target>[^']*)' information$"), "user_modified", "low", "T1098"),
    (R(r"^changed password expiry for (?P<target>\S+)$"), "user_modified", "low", "T1098"),
    (R(r"^new group: name=(?P<group>[^,]*), GID=(?P<gid>\d+)$"), "group_created", "low", "T1098"),
    (R(r"^group '(?P<group>[^']*)' removed$"), "group_deleted", "low", "T1098"),
    (
        R(r"^removed group '(?P<group>[^']*)' owned by '(?P<target>[^']*)'$"),
        "group_deleted",
        "low",
        "T1098",
    ),
    (
        R(r"^add '(?P<target>[^']*)' to group '(?P<group>[^']*)'$"),
        "group_member_added",
        "medium",
        "T1098",
    ),
    (
        R(r"^user (?P<target>\S+) added by (?P<by>\S+) to group (?P<group>\S+)$"),
        "group_member_added",
        "medium",
        "T1098",
    ),
    (
        R(r"^pam_unix\((?P<service>[\w-]+):chauthtok\): password changed for (?P<target>\S+)$"),
        "password_changed",
        "low",
        "T1098",
    ),
    (
        R(r"^password for '(?P<target>[^']*)' changed by '(?P<by>[^']*)'$"),
        "password_changed",
        "low",
        "T1098",
    ),
]
_ACCOUNT_NOISE = R(
    r"^(?:group added to |new group added|add '[^']*' to shadow group|"
    r"group '[^']*' removed from |failed adding user|pam_unix\(|"
    r"new user added|delete '[^']*' from (?:shadow )?group|"
    r"removed shadow group|members of group)"
)
_REPEATED = R(r"^message repeated (?P<count>\d+) times: \[ ?(?P<inner>.*)\]$", re.S)
_ACCOUNT_PROGRAMS = frozenset(
    {
        "useradd",
        "userdel",
        "usermod",
        "groupadd",
        "groupdel",
        "groupmod",
        "gpasswd",
        "passwd",
        "chpasswd",
        "chage",
        "chfn",
        "chsh",
        "adduser",
        "deluser",
        "newusers",
        "shadow-utils",
    }
)
_SSH_RULES = _ssh_rules()


def syslog_time(classic: str | None, iso: str | None, now: float) -> float | None:
    """Seconds since the epoch of a classic or RFC 3339 syslog stamp; None if invalid."""
    if iso:
        return _iso_time(iso)
    return _classic_time(classic, now) if classic else None


def _iso_time(iso: str) -> float | None:
    text = iso.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"  # Python 3.9 wants +HH:MM
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return time.mktime(stamp.timetuple()) + stamp.microsecond / 1e6
    return stamp.timestamp()


def _classic_time(classic: str, now: float) -> float | None:
    """A classic stamp has no year: take the latest one not in the future.

    A "Dec 31 23:59:59" line read on 1 January belongs to last year. Classic
    stamps are in the host's local time, as rsyslog writes them.
    """
    month_name, day_text, clock = classic.split()
    month = _MONTHS.get(month_name)
    day = int(day_text)
    hour, minute, second = (int(part) for part in clock.split(":"))
    if month is None or not 1 <= day <= 31 or hour > 23 or minute > 59 or second > 60:
        return None
    year = time.localtime(now).tm_year
    when = _local(year, month, day, hour, minute, second)
    if when is not None and when <= now + 86400:  # a day's slack for clock skew
        return when
    return _local(year - 1, month, day, hour, minute, second)


def _local(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float | None:
    hour_start = _hour_start(year, month, day, hour)
    return None if hour_start is None else hour_start + minute * 60 + second


@functools.lru_cache(maxsize=256)
def _hour_start(year: int, month: int, day: int, hour: int) -> float | None:
    """Local time of a whole hour; cached: mktime per line was a third of the parse time."""
    if month == 2 and day == 29 and not calendar.isleap(year):
        return None
    try:
        return time.mktime((year, month, day, hour, 0, 0, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _account(message: str) -> EventSpec | None:
    for pattern, type_, severity, technique in _ACCOUNT_RULES:
        m = pattern.match(message)
        if not m:
            continue
        groups = {key: value for key, value in m.groupdict().items() if value is not None}
        target = groups.pop("target", "")
        spec = EventSpec(type_, severity, technique, target, details=groups)
        if type_ == "user_created" and groups.get("uid") == "0":
            spec.severity = "critical"  # a second uid-0 account is a backdoor
        if type_ == "group_member_added" and groups.get("group") in PRIVILEGED_GROUPS:
            spec.severity = "high"
            spec.technique = "T1098"
        if type_ == "password_changed" and target == "root":
            spec.severity = "medium"
        return spec
    return None


def _sshd(message: str) -> list[EventSpec] | None:
    for pattern, build in _SSH_RULES:
        match = pattern.match(message)
        if match:
            spec = build(match)
            raw_address = spec.address
            spec.address = bare_ip(raw_address)
            if raw_address and not spec.address:
                spec.details["source"] = raw_address  # a host name: kept, not as the address
            return [spec]
    return [] if _SSH_NOISE.match(message) else None


def _sudo(message: str) -> list[EventSpec] | None:
    m = _SUDO.match(message)
    if not m:
        return [] if _SUDO_NOISE.match(message) else None
    details = {
        "target_user": m["target"],
        "command": m["command"],
        "tty": m["tty"],
        "pwd": m["pwd"],
    }
    if not (m["attempts"] or m["notin"] or m["other"]):
        return [EventSpec("sudo_command", "low", "T1548.003", m["user"], details=details)]
    if m["notin"]:
        details["reason"] = "not_in_sudoers"
    elif m["attempts"]:
        details["reason"] = f"{m['attempts']}_incorrect_password"
    else:
        details["reason"] = m["other"].strip()
    severity = "high" if m["notin"] else "medium"
    return [EventSpec("sudo_auth_failure", severity, "T1548.003", m["user"], details=details)]


def _su(message: str) -> list[EventSpec] | None:
    for pattern, type_ in _SU_RULES:
        m = pattern.match(message)
        if not m:
            continue
        target = m["target"]
        details = {"target_user": target}
        if type_ == "su_success":
            severity = "medium" if target == "root" else "low"
            return [EventSpec(type_, severity, "T1078", m["user"], details=details)]
        return [EventSpec(type_, "medium", "T1110", m["user"], details=details)]
    return [] if _SU_NOISE.match(message) else None


def _accounts(message: str) -> list[EventSpec] | None:
    spec = _account(message)
    if spec is not None:
        return [spec]
    return [] if _ACCOUNT_NOISE.match(message) else None


def _quiet(message: str) -> list[EventSpec] | None:
    return []  # other authpriv chatter: recognised, not a security event here


_FAMILIES: dict[str, Callable[[str], list[EventSpec] | None]] = {
    "sshd": _sshd,
    "sshd-session": _sshd,
    "sshd-auth": _sshd,
    "sudo": _sudo,
    "su": _su,
    **dict.fromkeys(_ACCOUNT_PROGRAMS, _accounts),
    **dict.fromkeys(
        (
            "systemd-logind",
            "CRON",
            "cron",
            "crond",
            "cockpit-session",
            "polkitd",
            "systemd",
            "login",
            "dbus-daemon",
        ),
        _quiet,
    ),
}


def parse_message(program: str, message: str) -> list[EventSpec] | None:
    """Events for one message of one program; [] for known noise, None if unrecognised."""
    family = _FAMILIES.get(program.split("(", 1)[0])  # "sshd(pam_unix)" is old Red Hat
    if family is None:
        return None
    message = message.rstrip("\r")
    m = _REPEATED.match(message)
    if m:  # rsyslog's "message repeated N times: [ msg]": N more of the same event
        inner = family(m["inner"].rstrip())
        return None if inner is None else inner * min(int(m["count"]), MAX_REPEAT)
    return family(message)


def parse_line(line: str, now: float) -> Parsed | None:
    """Parse one syslog line (classic or RFC 3339 prefix); None if not recognised."""
    m = _PREFIX.match(line.rstrip("\r"))  # files copied from Windows hosts end lines in CRLF
    if not m:
        return None
    events = parse_message(m["prog"], m["msg"])
    if events is None:
        return None
    when = syslog_time(m["classic"], m["iso"], now)
    process = m["prog"] + (f"[{m['pid']}]" if m["pid"] else "")
    return Parsed(when, m["host"], process, events)
