"""Collector detections: each fires at its threshold and not below, judged by event time.

Edges run against a real Store (SQLite file) through the storing path that
gRPC uses, with the agent's message shapes; the end-to-end cases run a real
collector process and read `dcguard-collector events` and /metrics.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from dcguard.collector.config import load_config
from dcguard.collector.identity import PeerIdentity
from dcguard.collector.security.config import DetectionConfig
from dcguard.collector.security.detect import Detector
from dcguard.collector.security.storage import EventHook
from dcguard.collector.store import Database, PostgresDatabase, ReportStore, report_store
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb
from tests.postgres import stored_events as pg_stored_events
from tests.security_helpers import FakeAgent, event, failures, ransomware_sign, stored_events
from tests.support import Collector, metric, wait_for

ATTACKER = "203.0.113.5"
T0 = time.time() - 2 * 86400  # two days ago: a backlog is judged as it happened


class Site:
    """A real collector Store with the security hook; agents submit reports to it."""

    def __init__(self, path: Database, config: DetectionConfig | None = None) -> None:
        self.path = path
        self.config = config or DetectionConfig()
        self.sequences: dict[str, int] = {}
        self.instance = uuid.uuid4().hex
        self.store = self._open()

    def _open(self) -> ReportStore:
        store = report_store(self.path, hooks=[EventHook([Detector(self.config)])])
        store.open()
        return store

    def restart(self) -> None:
        self.store.close()
        self.store = self._open()

    def send(self, host: str, events: list[pb.SecurityEvent]) -> None:
        sequence = self.sequences.get(host, 0) + 1
        self.sequences[host] = sequence
        report = pb.Report(sequence=sequence, events=events)
        report.collected_at.FromNanoseconds(time.time_ns())
        agent = pb.AgentInfo(
            host=host, department="dept", interval_seconds=15, instance_id=self.instance
        )
        self.store.apply(PeerIdentity(host, "dept"), agent, [report], time.time())

    def detections(self, kind: str | None = None) -> list[dict[str, object]]:
        rows = (
            pg_stored_events(self.path)
            if isinstance(self.path, PostgresDatabase)
            else stored_events(self.path)
        )
        return [row for row in rows if row["detection"] and (kind is None or row["type"] == kind)]


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path):
    """The detections' edges on both engines: their windows are the store's queries."""
    s = Site(
        tmp_path / "collector.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_cluster").database()
    )
    yield s
    s.store.close()


# --- brute force ---------------------------------------------------------------------------


def test_brute_force_fires_at_eight_failures_within_120s(site):
    site.send("web01", failures(ATTACKER, T0, 8, step=120 / 7))
    found = site.detections()
    assert [d["type"] for d in found] == ["brute_force"]
    detection = found[0]
    assert detection["severity"] == pb.SEVERITY_HIGH
    assert detection["technique"] == "T1110"
    assert detection["source"] == "detection"
    assert detection["source_address"] == ATTACKER and detection["host"] == "web01"
    assert detection["event_time"] == pytest.approx(T0 + 120)  # when the 8th failed


def test_seven_failures_or_eight_spread_over_more_than_120s_do_not_fire(site):
    site.send("web01", failures(ATTACKER, T0, 7, step=1))
    site.send("web02", failures(ATTACKER, T0, 8, step=120.5 / 7))
    assert site.detections("brute_force") == []


def invalid_user_attempts(address: str, start: float, count: int) -> list[pb.SecurityEvent]:
    """What sshd logs for each password guess on a missing account: two lines, two events."""
    out = []
    for i in range(count):
        out.append(
            event(
                "ssh_invalid_user",
                start + i,
                source_address=address,
                user=f"u{i}",
                raw=f"sshd[7]: Invalid user u{i} from {address} port {40000 + i}",
            )
        )
        out.append(
            event(
                "ssh_login_failed",
                start + i,
                source_address=address,
                user=f"u{i}",
                raw=f"sshd[7]: Failed password for invalid user u{i} from {address} "
                f"port {40000 + i} ssh2",
                invalid_user="true",
            )
        )
    return out


def test_invalid_user_attempts_count_once_each(site):
    site.send("web01", invalid_user_attempts(ATTACKER, T0, 7))  # 14 events, 7 attempts
    assert site.detections("brute_force") == []
    site.send("web02", invalid_user_attempts(ATTACKER, T0, 8))
    (found,) = site.detections("brute_force")
    assert found["host"] == "web02"


def test_invalid_users_alone_reach_the_threshold(site):
    # A publickey-only server logs "Invalid user" without any "Failed password".
    site.send(
        "web01",
        [
            event("ssh_invalid_user", T0 + i, source_address=ATTACKER, user=f"u{i}")
            for i in range(8)
        ],
    )
    (found,) = site.detections("brute_force")
    assert found["details"]["counted"] == "ssh_invalid_user"


def test_one_attack_is_one_detection_per_window_not_one_per_failure(site):
    site.send("web01", failures(ATTACKER, T0, 30, step=0.5))  # 30 failures in 15 s
    assert len(site.detections("brute_force")) == 1
    site.send("web01", failures(ATTACKER, T0 + 10_000, 300, step=1))  # 5 minutes, 1 a second
    # Fires at the 8th failure, then again only once the suppression window has passed:
    # at +7 s, +127 s and +247 s.
    later = [d["event_time"] - (T0 + 10_000) for d in site.detections("brute_force")[1:]]
    assert later == pytest.approx([7, 127, 247])


def test_failures_from_other_sources_or_hosts_do_not_add_up(site):
    site.send("web01", failures(ATTACKER, T0, 4) + failures("198.51.100.7", T0, 4))
    site.send("web02", failures(ATTACKER, T0 + 5, 4))
    assert site.detections("brute_force") == []


def test_windows_use_event_time_not_arrival_time(site):
    # Delivered in one burst, but the failures happened 10 minutes apart: no attack.
    site.send("web01", failures(ATTACKER, T0, 10, step=600))
    assert site.detections() == []
    # Delivered over many reports (and out of order), but they happened within 8 s.
    for one in reversed(failures(ATTACKER, T0 + 20_000, 8)):
        site.send("web02", [one])
    assert len(site.detections("brute_force")) == 1


def test_forged_detection_from_an_agent_is_not_a_detection(site):
    site.send(
        "web01", [event("brute_force", T0, source_address=ATTACKER, severity=pb.SEVERITY_CRITICAL)]
    )
    assert site.detections() == []


def test_windows_survive_a_collector_restart(site):
    site.send("web01", failures(ATTACKER, T0, 5))
    site.restart()
    site.send("web01", failures(ATTACKER, T0 + 5, 3))
    assert len(site.detections("brute_force")) == 1


def test_thresholds_come_from_the_config(tmp_path):
    site = Site(tmp_path / "c.db", DetectionConfig(brute_force_threshold=3, brute_force_window=10))
    site.send("web01", failures(ATTACKER, T0, 3, step=5.1))  # spans 10.2 s
    assert site.detections() == []
    site.send("web01", failures(ATTACKER, T0 + 100, 3, step=5))
    assert len(site.detections("brute_force")) == 1
    site.store.close()


# --- distributed attack ----------------------------------------------------------------------


def test_one_source_failing_on_three_hosts_within_ten_minutes_is_critical(site):
    site.send("web01", failures(ATTACKER, T0, 2))
    site.send("web02", failures(ATTACKER, T0 + 200, 2))
    assert site.detections("distributed_attack") == []
    site.send("db01", failures(ATTACKER, T0 + 600, 1))  # exactly 10 minutes after the first
    found = site.detections("distributed_attack")
    assert len(found) == 1
    assert found[0]["severity"] == pb.SEVERITY_CRITICAL
    assert found[0]["details"]["hosts"] == "db01,web01,web02"
    site.send("db02", failures(ATTACKER, T0 + 601, 1))  # the same attack, still one detection
    assert len(site.detections("distributed_attack")) == 1


def test_three_hosts_spread_over_more_than_ten_minutes_do_not_fire(site):
    site.send("web01", failures(ATTACKER, T0, 1))
    site.send("web02", failures(ATTACKER, T0 + 300, 1))
    site.send("db01", failures(ATTACKER, T0 + 600.5, 1))
    assert site.detections("distributed_attack") == []


def test_distributed_attack_completed_by_a_late_backlog(site):
    site.send("web02", failures(ATTACKER, T0 + 300, 1))
    site.send("db01", failures(ATTACKER, T0 + 500, 1))
    site.send("web01", failures(ATTACKER, T0, 1))  # delivered last, happened first
    assert len(site.detections("distributed_attack")) == 1


# --- ransomware spreading (window edges on both engines; gRPC: test_ransomware_collector) ---


def test_ransomware_spreading_at_two_hosts_within_the_hour_not_beyond(site):
    site.send("files01", [ransomware_sign(T0), ransomware_sign(T0 + 60, "canary")])
    site.send("files02", [ransomware_sign(T0 + 60 + 3601)])  # just past the 1 h default
    assert site.detections("ransomware_spreading") == []
    site.send("files03", [ransomware_sign(T0 + 3600, type_="mass_deletion")])
    site.send("files04", [ransomware_sign(T0 + 3000)])  # a third host: the same outbreak
    found = site.detections("ransomware_spreading")
    assert len(found) == 1
    assert found[0]["details"]["first_host"] == "files01"
    assert found[0]["details"]["hosts"] == "files01,files03"


def test_ransomware_spreading_ignores_other_severe_events(site):
    site.send("files01", [ransomware_sign(T0)])
    site.send("files02", [ransomware_sign(T0 + 10, type_="file_modified")])
    site.send("files03", [ransomware_sign(T0 + 20, severity=pb.SEVERITY_HIGH)])
    assert site.detections("ransomware_spreading") == []


# --- success after failures ----------------------------------------------------------------


def accepted(when: float, address: str = ATTACKER) -> pb.SecurityEvent:
    return event("ssh_login_accepted", when, source_address=address, user="root", method="password")


def test_accepted_login_after_brute_force_is_critical(site):
    site.send("web01", [*failures(ATTACKER, T0, 8), accepted(T0 + 30)])
    found = site.detections("success_after_failures")
    assert len(found) == 1
    assert found[0]["severity"] == pb.SEVERITY_CRITICAL and found[0]["technique"] == "T1078"
    assert found[0]["user"] == "root"


def test_accepted_login_after_seven_failures_or_long_after_is_not(site):
    site.send("web01", [*failures(ATTACKER, T0, 7), accepted(T0 + 30)])
    site.send("web02", [*failures("198.51.100.9", T0, 8), accepted(T0 + 1000, "198.51.100.9")])
    assert site.detections("success_after_failures") == []


def test_accepted_login_stored_before_the_failures_arrive(site):
    site.send("web01", [accepted(T0 + 30)])
    site.send("web02", failures(ATTACKER, T0, 8))  # a backlog from another host, late
    (found,) = site.detections("success_after_failures")
    assert (found["host"], found["event_time"]) == ("web01", pytest.approx(T0 + 30))
    assert found["details"]["attacked_host"] == "web02"
    assert found["received_at"] > T0 + 3000  # when it was stored, not 1970


# --- new privileged account --------------------------------------------------------------------


def test_created_account_added_to_sudo_is_a_detection(site):
    site.send("web01", [event("user_created", T0, user="backdoor", uid="1001")])
    site.send("web01", [event("group_member_added", T0 + 5, user="backdoor", group="sudo")])
    found = site.detections("new_privileged_account")
    assert len(found) == 1
    assert found[0]["user"] == "backdoor" and found[0]["severity"] == pb.SEVERITY_HIGH
    assert found[0]["details"]["group"] == "sudo"


def test_useradd_with_a_privileged_group_fires_at_once(site):
    site.send("web01", [event("user_created", T0, user="ops2", groups="adm,wheel")])
    assert len(site.detections("new_privileged_account")) == 1


def test_unprivileged_groups_old_accounts_and_late_grants_do_not_fire(site):
    site.send(
        "web01",
        [
            event("user_created", T0, user="alice"),
            event("group_member_added", T0 + 5, user="alice", group="users"),
        ],
    )
    site.send("web01", [event("group_member_added", T0, user="olduser", group="sudo")])
    site.send(
        "web02",
        [
            event("user_created", T0, user="bob"),
            event("group_member_added", T0 + 3601, user="bob", group="sudo"),
        ],
    )
    assert site.detections("new_privileged_account") == []


def test_grant_stored_before_the_creation_still_fires(site):
    site.send("web01", [event("group_member_added", T0 + 5, user="eve", group="wheel")])
    site.send("web01", [event("user_created", T0, user="eve")])
    assert len(site.detections("new_privileged_account")) == 1


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("[detection]\nbogus = 1", "detection.bogus: unknown key"),
        ("[detection.brute_force]\nthreshold = 1", "detection.brute_force.threshold: must be at"),
        ('[detection.brute_force]\nthreshold = "8"', "threshold: must be an integer"),
        ('[detection.brute_force]\nwindow = "2 minutes"', "brute_force.window: not a duration"),
        ('[detection.brute_force]\nenabled = "yes"', "enabled: must be true or false"),
        ("[detection.distributed_attack]\nhosts = 1", "distributed_attack.hosts: must be at least"),
        ("[detection.success_after_failures]\nwindow = 5", "window: must be a duration"),
        ("[detection.new_privileged_account]\ngroups = []", "groups: must not be empty"),
        ("[detection.new_privileged_account]\ngroups = [1]", "groups: must be a list of strings"),
        ("detection = 3", "detection: must be a table"),
    ],
)
def test_detection_config_garbage_is_one_line(tmp_path, snippet, expected):
    path = tmp_path / "collector.toml"
    path.write_text(f'{snippet}\n[server]\ninsecure = true\ngrpc_listen = "127.0.0.1:0"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_detection_config_is_read(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text(
        '[detection.brute_force]\nthreshold = 5\nwindow = "1m"\n'
        '[detection.new_privileged_account]\ngroups = ["sudo", "docker"]\n'
        "[detection.distributed_attack]\nenabled = false\n"
    )
    config = load_config(path).security.detection
    assert (config.brute_force_threshold, config.brute_force_window) == (5, 60)
    assert config.brute_force_suppress == 60  # follows the window unless set
    assert config.privileged_groups == ("sudo", "docker") and not config.distributed


# --- end to end, real collector process -------------------------------------------------------


def _events_json(collector: Collector, *args: str) -> list[dict[str, object]]:
    import json

    result = collector.cli("events", "--json", *args)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_end_to_end_brute_force_then_distributed_then_success(collector):
    now = time.time() - 60
    agents = {
        host: FakeAgent(collector.grpc_address, host=host) for host in ("web01", "web02", "db01")
    }
    try:
        agents["web01"].send(failures(ATTACKER, now, 10))
        shown = _events_json(collector, "--min-severity", "high")
        assert [(e["type"], e["host"]) for e in shown] == [("brute_force", "web01")]
        samples = wait_for(
            lambda: (
                (s := collector.metrics())
                and metric(
                    s, "dcguard_security_detections_total", host="web01", detection="brute_force"
                )
                == 1
                and s
            ),
            message="the brute force on /metrics",
        )
        assert (
            metric(
                samples,
                "dcguard_security_events_total",
                host="web01",
                type="ssh_login_failed",
                severity="low",
            )
            == 10
        )

        agents["web02"].send(failures(ATTACKER, now + 20, 2))
        agents["db01"].send(failures(ATTACKER, now + 30, 1))
        agents["db01"].send([accepted(now + 40)])
        kinds = {e["type"]: e for e in _events_json(collector, "--min-severity", "critical")}
        assert set(kinds) == {"distributed_attack", "success_after_failures"}
        assert kinds["success_after_failures"]["host"] == "db01"
        assert kinds["distributed_attack"]["technique"] == "T1110"
    finally:
        for agent in agents.values():
            agent.close()


def test_end_to_end_new_privileged_account_and_restart(collector):
    now = time.time() - 60
    agent = FakeAgent(collector.grpc_address, host="files01")
    try:
        agent.send([event("user_created", now, user="svc-backup")])
        agent.send(failures(ATTACKER, now, 5))
        collector.stop()
        collector.start()
        # The first half of each pattern is only in the database now.
        agent.send([event("group_member_added", now + 60, user="svc-backup", group="sudo")])
        agent.send(failures(ATTACKER, now + 10, 3))
        kinds = sorted(e["type"] for e in _events_json(collector, "--min-severity", "high"))
        assert kinds == ["brute_force", "new_privileged_account"]
        samples = collector.metrics()
        assert (
            metric(
                samples,
                "dcguard_security_detections_total",
                host="files01",
                detection="new_privileged_account",
            )
            == 1
        )
    finally:
        agent.close()


def test_end_to_end_empty_password_root_login_after_a_brute_force(tmp_path, collector, make_agent):
    """A real agent reads an auth log: eight failures, then "Accepted none for root"."""
    start = time.time() - 120

    def stamp(t: float) -> str:  # RFC 3339, as Debian 12's rsyslog writes it
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))

    lines = [
        f"{stamp(start + i)} db01 sshd[3411]: Failed password for root from {ATTACKER} "
        f"port {54733 + i} ssh2"
        for i in range(8)
    ]
    lines.append(
        f"{stamp(start + 30)} db01 sshd[3420]: Accepted none for root from {ATTACKER} "
        "port 54800 ssh2"
    )
    log = tmp_path / "auth.log"
    log.write_text("\n".join(lines) + "\n")
    agent = make_agent(
        [collector.grpc_address],
        host="db01",
        extra_config=f"""
        [sources]
        smart = false
        io_errors = false
        fim = false
        ports = false

        [security.auth_log]
        mode = "file"
        path = "{log}"
        start_at = "beginning"
        """,
    )
    agent.start()
    shown = wait_for(
        lambda: (
            (e := _events_json(collector, "--host", "db01"))
            and any(x["type"] == "success_after_failures" for x in e)
            and e
        ),
        interval=0.5,
        message="success_after_failures from the agent's log",
    )
    kinds = {e["type"]: e for e in shown}
    login = kinds["ssh_login_accepted"]
    assert (login["user"], login["source_address"], login["severity"]) == ("root", ATTACKER, "high")
    assert kinds["success_after_failures"]["severity"] == "critical"
    assert kinds["brute_force"]["host"] == "db01"
