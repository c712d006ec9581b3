"""The collector's side of ransomware: the risk reason, spreading across hosts, the config.

Agents' ransomware events (the SecurityEvent contract of the agent's watcher:
type ransomware_suspected / mass_deletion, severity CRITICAL, source
"ransomware", details sign / files_touched / paths / extension / note_name)
are submitted over real gRPC to a real collector on 127.0.0.1, exactly as an
agent sends them; what a user checks is read back from `dcguard-collector
risk`, `dcguard-collector events` and /metrics. The alert rules' promtool
tests live in deploy/prometheus/make_tests.py (tests/test_rules.py runs them); the
page through real Prometheus and Alertmanager is in tests/test_paging.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcguard.v1 import collector_pb2 as pb
from tests.security_helpers import FakeAgent
from tests.security_helpers import ransomware_sign as sign
from tests.support import Collector, metric, run_cli, wait_for

VI = {"LANG": "vi_VN.UTF-8"}
NOW = time.time()
DAY = 86400.0

# The module's collector: signs stay active 1 h; spreading is 2 hosts within 10 min.
CONFIG = """
[risk]
ransomware_window = "1h"

[risk.host.brief01]
ransomware_window = "4s"

[detection.ransomware_spreading]
hosts = 2
window = "10m"
"""


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    workdir = tmp_path_factory.mktemp("ransomware")
    siem = workdir / "siem.jsonl"  # the SIEM forwarder's file destination
    c = Collector(workdir, extra_config=CONFIG + f'\n[forward.file]\npath = "{siem}"\n')
    c.start()
    yield c
    c.stop()


def send(collector: Collector, host: str, *events: pb.SecurityEvent) -> None:
    agent = FakeAgent(collector.grpc_address, host=host, department="so-tu-phap")
    try:
        agent.send(list(events))
    finally:
        agent.close()


def risk_json(collector: Collector) -> dict[str, dict[str, object]]:
    out = collector.cli("risk", "--json")
    assert out.returncode == 0, out.stderr
    return {a["host"]: a for a in json.loads(out.stdout)}


def reasons(collector: Collector, host: str) -> dict[str, str]:
    found = risk_json(collector).get(host)
    if found is None:
        return {}
    return {r["reason"]: r["message"] for r in found["reasons"]}  # type: ignore[index]


def risk_metric(collector: Collector, host: str) -> float | None:
    return metric(
        collector.metrics(), "dcguard_data_loss_risk", host=host, reason="ransomware_suspected"
    )


def detections(collector: Collector, kind: str) -> list[dict[str, object]]:
    out = collector.cli("events", "--since", "30d", "--json")
    assert out.returncode == 0, out.stderr
    return [e for e in json.loads(out.stdout) if e["type"] == kind and e["detection"]]


# --- the risk reason ---------------------------------------------------------------------


def test_mass_rename_is_the_heaviest_reason_with_its_sentence(collector: Collector) -> None:
    send(collector, "files01", sign(NOW - 60, extension=".locked"))
    found = risk_json(collector)["files01"]
    assert found["score"] == 100
    first = found["reasons"][0]  # type: ignore[index]
    assert first["reason"] == "ransomware_suspected"
    assert first["weight"] == 100
    message = first["message"]
    assert "212 files under /srv/share renamed to .locked" in message
    assert "isolate" in message and "do not power it off" in message
    assert wait_for(lambda: risk_metric(collector, "files01") == 1.0)
    assert metric(collector.metrics(), "dcguard_data_loss_risk_score", host="files01") == 100


def test_sentence_in_vietnamese(collector: Collector) -> None:
    send(collector, "files02", sign(NOW - 60, extension=".locked"))
    out = run_cli("dcguard.collector", "risk", "--config", str(collector.config_path), env=VI)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "ransomware_suspected" in ln)
    assert "212 tệp trong /srv/share bị đổi đuôi thành .locked" in line
    assert "không tắt máy" in line


@pytest.mark.parametrize(
    ("host", "event", "words"),
    [
        (
            "files03",
            sign(NOW - 30, "canary", path="/srv/share/.dcguard-canary.docx", files=1),
            "canary file /srv/share/.dcguard-canary.docx was changed",
        ),
        (
            "files04",
            sign(NOW - 30, "ransom_note", files=37, note_name="README_DECRYPT.txt"),
            "ransom note README_DECRYPT.txt appeared in 37 directories under /srv/share",
        ),
        (
            "files05",
            sign(NOW - 30, "entropy_burst", path="/var/www/uploads", files=58),
            "58 files under /var/www/uploads rewritten with random-looking content",
        ),
        (
            "files06",
            sign(NOW - 30, "header_mismatch", path="/home", files=9),
            "9 files under /home no longer match their type",
        ),
        (
            "files07",
            sign(NOW - 30, "mass_deletion", type_="mass_deletion", path="/srv/db", files=4000),
            "4000 files under /srv/db deleted",
        ),
    ],
)
def test_each_sign_is_named(
    collector: Collector, host: str, event: pb.SecurityEvent, words: str
) -> None:
    send(collector, host, event)
    assert words in reasons(collector, host)["ransomware_suspected"]


def test_a_ransom_note_names_its_directories_not_the_files_touched(
    collector: Collector,
) -> None:
    """The agent's files_touched counts files; the note's directories come in their own key."""
    note = sign(NOW - 30, "ransom_note", files=60, note_name="README_DECRYPT.txt")
    note.details["directories"] = "7"
    send(collector, "files14", note)
    said = reasons(collector, "files14")["ransomware_suspected"]
    assert "README_DECRYPT.txt appeared in 7 directories under /srv/share" in said, said


def test_hostile_sign_text_stays_on_one_line(collector: Collector) -> None:
    """Path, extension and count come from the agent: they cannot break or fake CLI lines."""
    hostile = sign(
        NOW - 30,
        path="/srv/share\nfiles99 (x): risk 0/100",
        files=1,
        extension=".locked\x1b[31m\n  backup_stale: fine",
    )
    hostile.details["files_touched"] = "12abc"
    send(collector, "files11", hostile)
    out = collector.cli("risk")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "files11" in ln or "renamed to" in ln]
    ours = [ln for ln in lines if "/srv/share files99" in ln]
    assert len(ours) == 1, out.stdout
    assert "0 files under /srv/share files99 (x): risk 0/100 renamed to .locked" in ours[0]
    assert "\x1b" not in out.stdout
    assert not any(ln.startswith("files99") for ln in out.stdout.splitlines())


@pytest.mark.parametrize(("host", "count"), [("files12", "\u00b2"), ("files13", "\u0663")])
def test_files_touched_is_a_decimal_ascii_count_or_zero(
    collector: Collector, host: str, count: str
) -> None:
    """str.isdigit() accepts "²" (int() then raises) and Arabic-Indic digits: not counts."""
    odd = sign(NOW - 30, path="/srv/share", files=1, extension=".locked")
    odd.details["files_touched"] = count
    send(collector, host, odd)
    out = collector.cli("risk")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert (
        "0 files under /srv/share renamed to .locked"
        in reasons(collector, host)["ransomware_suspected"]
    )


def test_an_old_sign_is_not_active(collector: Collector) -> None:
    """A backlog delivering a sign older than the window: stored, but no reason now."""
    send(collector, "files08", sign(NOW - 2 * 3600))
    assert "ransomware_suspected" not in reasons(collector, "files08")
    assert risk_metric(collector, "files08") in (0.0, None)


def test_the_reason_ends_with_its_window(collector: Collector) -> None:
    """brief01 has a 4 s window: active at once, gone from /metrics and risk after it."""
    send(collector, "brief01", sign(time.time()))
    assert wait_for(lambda: risk_metric(collector, "brief01") == 1.0, timeout=3)
    wait_for(lambda: risk_metric(collector, "brief01") == 0.0, timeout=10, interval=0.5)
    assert "ransomware_suspected" not in reasons(collector, "brief01")


def test_other_critical_events_are_not_ransomware(collector: Collector) -> None:
    other = sign(NOW - 30, type_="file_modified")
    send(collector, "files09", other)
    assert "ransomware_suspected" not in reasons(collector, "files09")


def test_the_sign_survives_a_restart(tmp_path: Path) -> None:
    c = Collector(tmp_path / "c", extra_config=CONFIG)
    c.start()
    try:
        send(c, "files10", sign(time.time() - 10, extension=".crypt"))
        c.stop()
        c.start()
        assert wait_for(lambda: risk_metric(c, "files10") == 1.0)
    finally:
        c.stop()
    assert "renamed to .crypt" in reasons(c, "files10")["ransomware_suspected"]


# --- spreading -------------------------------------------------------------------------------


def test_two_hosts_within_the_window_spread_once(collector: Collector) -> None:
    t = NOW - 3 * DAY  # its own stretch of time: no other test's signs are near
    send(collector, "spread-a", sign(t))
    assert not [d for d in detections(collector, "ransomware_spreading") if _near(d, t)]
    send(collector, "spread-b", sign(t + 120, "ransom_note", note_name="HOW_TO_DECRYPT.txt"))
    # Later reports of the same outbreak, from the two hosts and a third.
    send(collector, "spread-a", sign(t + 200, "entropy_burst"))
    send(collector, "spread-c", sign(t + 300, type_="mass_deletion"))
    found = [d for d in detections(collector, "ransomware_spreading") if _near(d, t)]
    assert len(found) == 1, found
    spread = found[0]
    assert spread["severity"] == "critical"
    assert spread["technique"] == "T1486"
    details = spread["details"]
    assert details["hosts"] == "spread-a,spread-b"  # type: ignore[index]
    assert details["first_host"] == "spread-a"  # type: ignore[index]
    assert "spread-a, spread-b" in str(spread["message"])
    counted = metric(
        collector.metrics(),
        "dcguard_security_events_total",
        host="spread-b",  # the host whose report completed the window
        type="ransomware_spreading",
        severity="critical",
    )
    assert counted is not None and counted >= 1
    # The series the RansomwareSpreading alert reads.
    assert (
        metric(
            collector.metrics(),
            "dcguard_security_detections_total",
            host="spread-b",
            detection="ransomware_spreading",
        )
        == 1
    )


def test_the_siem_gets_the_spreading_alert_and_the_signs(collector: Collector) -> None:
    t = NOW - 9 * DAY
    send(collector, "siem-a", sign(t, extension=".locked"))
    send(collector, "siem-b", sign(t + 60, "mass_deletion", type_="mass_deletion"))
    siem = collector.workdir / "siem.jsonl"

    def forwarded() -> list[dict[str, Any]]:
        if not siem.exists():
            return []
        docs = [json.loads(line) for line in siem.read_text().splitlines()]
        return [d for d in docs if d["host"]["name"] in ("siem-a", "siem-b")]

    docs = wait_for(lambda: len(forwarded()) == 3 and forwarded(), message="3 forwarded events")
    by_action = {d["event"]["action"]: d for d in docs}
    spread = by_action["ransomware_spreading"]
    assert spread["event"]["kind"] == "alert"
    assert "malware" in spread["event"]["category"]
    assert spread["threat"]["technique"]["id"] == ["T1486"]
    assert spread["dcguard"]["details"]["hosts"] == "siem-a,siem-b"
    suspected = by_action["ransomware_suspected"]
    assert suspected["event"]["kind"] == "event"
    assert suspected["event"]["category"] == ["malware", "file"]
    assert suspected["file"]["path"] == "/srv/share"
    assert by_action["mass_deletion"]["event"]["category"] == ["file"]
    assert by_action["mass_deletion"]["threat"]["technique"]["id"] == ["T1485"]


def test_late_report_completes_the_window(collector: Collector) -> None:
    """The second host's sign arrives first (an agent's backlog): still one detection."""
    t = NOW - 5 * DAY
    send(collector, "late-b", sign(t + 300))
    send(collector, "late-a", sign(t))
    found = [d for d in detections(collector, "ransomware_spreading") if _near(d, t)]
    assert len(found) == 1
    assert found[0]["details"]["first_host"] == "late-a"  # type: ignore[index]


def test_one_host_alone_or_hosts_far_apart_do_not_spread(collector: Collector) -> None:
    t = NOW - 7 * DAY
    send(collector, "alone-a", sign(t), sign(t + 60, "canary"), sign(t + 90, "ransom_note"))
    send(collector, "alone-b", sign(t + 3600))  # an hour later: outside the 10 min window
    assert not [d for d in detections(collector, "ransomware_spreading") if _near(d, t, 7200)]


def _near(detection: dict[str, object], t: float, within: float = 1800) -> bool:
    import datetime

    when = datetime.datetime.fromisoformat(str(detection["time"]).replace("Z", "+00:00"))
    return abs(when.timestamp() - t) <= within


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ('[risk]\nransomware_window = "soon"\n', "ransomware_window"),
        ("[risk]\nransomware_window = 5\n", "ransomware_window"),
        ('[risk.host.x]\nransomware_window = "0s"\n', "ransomware_window"),
        ("[risk.weights]\nransomware_suspected = 101\n", "ransomware_suspected"),
        ("[detection.ransomware_spreading]\nhosts = 1\n", "hosts"),
        ('[detection.ransomware_spreading]\nwindow = "-"\n', "window"),
        ('[detection.ransomware_spreading]\nenabled = "yes"\n', "enabled"),
        ("[detection.ransomware_spreading]\nhost = 3\n", "host"),
    ],
)
def test_garbage_config_is_one_line_and_exit_2(tmp_path: Path, config: str, key: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(f'[server]\ndata_dir = "{tmp_path}"\ninsecure = true\n{config}')
    for command in ("check-config", "risk"):
        out = run_cli("dcguard.collector", command, "--config", str(path))
        assert out.returncode == 2, (command, out)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, (command, out.stderr)
        assert key in lines[0]
        assert "Traceback" not in out.stderr


# --- collectors sharing one PostgreSQL store -----------------------------------------------------


def test_a_sign_stored_through_one_collector_shows_on_the_other(
    pg_cluster: Any, tmp_path: Path
) -> None:
    """The agent reports to A; B, scraped by Prometheus just as well, shows the reason."""
    database = pg_cluster.database()
    password = tmp_path / "db-password"
    password.write_text(Path(pg_cluster.password_file).read_text())
    password.chmod(0o600)
    store = (
        f'[store]\nengine = "postgresql"\ndsn = "{database.dsn}"\npassword_file = "{password}"\n'
    )
    a = Collector(tmp_path / "a", extra_config=store)
    b = Collector(tmp_path / "b", extra_config=store)
    try:
        a.start()
        b.start()
        send(a, "shared01", sign(time.time() - 5, "canary", path="/srv/share/.canary.odt"))
        assert wait_for(lambda: risk_metric(b, "shared01") == 1.0, timeout=10)
        assert metric(b.metrics(), "dcguard_data_loss_risk_score", host="shared01") == 100
        assert (
            "canary file /srv/share/.canary.odt" in reasons(b, "shared01")["ransomware_suspected"]
        )
    finally:
        a.stop()
        b.stop()
