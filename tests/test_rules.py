"""Alert and recording rules: promtool-clean, unit-tested, documented, and routed by Alertmanager.

The rule expressions' evaluation against a live Prometheus fed by a real
agent is in test_dashboards.py (one Prometheus for both).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promstack import run_alertmanager
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/prometheus"
RULE_FILES = [RULES / "dcguard-alerts.yml", RULES / "dcguard-recording.yml"]
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
RUNBOOKS = ROOT / "docs/runbooks.md"
RUNBOOKS_VI = ROOT / "docs/vi/runbooks.md"
VI_TEMPLATES = ROOT / "deploy/alertmanager/templates/dcguard-vi.tmpl"
TEMPLATE_EXPRESSION = re.compile(r"\{\{.*?\}\}")


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for group in yaml.safe_load(RULE_FILES[0].read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_promtool_check_rules_is_clean() -> None:
    result = run("promtool", "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in (result.stdout + result.stderr).upper()


def test_unit_tests_are_current() -> None:
    result = run(sys.executable, RULES / "make_tests.py", "--check")
    assert result.returncode == 0, result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", "dcguard_test.yml", cwd=RULES / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    document = yaml.safe_load((RULES / "tests/dcguard_test.yml").read_text())
    firing: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for test in document["tests"]:
        for case in test.get("alert_rule_test", []):
            bucket = firing if case["exp_alerts"] else quiet
            bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    names = {a["alert"] for a in alerts()}
    assert set(firing) == names
    assert set(quiet) == names


def test_the_required_alerts_exist() -> None:
    names = {a["alert"] for a in alerts()}
    assert {
        "AgentDown",
        "DepartmentSilent",
        "CollectorDown",
        "CollectorNotScraped",
        "BackupStale",
        "BackupFailed",
        "BackupMissing",
        "BackupUnverified",
        "BackupOnSameDevice",
        "DiskSmartFailing",
        "DiskSmartDegrading",
        "RaidDegraded",
        "FilesystemReadOnly",
        "FilesystemAlmostFull",
        "FilesystemFillingUp",
        "FilesystemFillingUpFast",
        "DiskIoErrors",
        "DataLossRiskHigh",
        "SshBruteForce",
        "DistributedAttack",
        "LoginAfterFailures",
        "AgentSpoolDropping",
        "AgentReportsLost",
    } <= names


def test_filling_up_alerts_do_not_exclude_read_only_filesystems() -> None:
    """The node-mixin's `and readonly == 0` silences a filling disk once it turns read-only."""
    for rule in alerts():
        if rule["alert"].startswith("FilesystemFillingUp"):
            assert "predict_linear(dcguard_filesystem_avail_bytes[6h]" in rule["expr"]
            assert "readonly" not in rule["expr"]


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_says_who_what_and_how(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket"}
    annotations = rule["annotations"]
    # One rule, its text in both languages: no alert fires twice, and the receiver's
    # template picks the language (deploy/alertmanager/templates/dcguard-vi.tmpl).
    assert set(annotations) == {
        "summary",
        "description",
        "runbook_url",
        "summary_vi",
        "description_vi",
        "runbook_url_vi",
    }
    per_host = "host" in rule["expr"] or not re.search(r"\b(by|absent|up)\b", rule["expr"])
    if per_host and rule["alert"] != "DepartmentSilent":
        for key in ("summary", "description", "summary_vi", "description_vi"):
            assert "{{ $labels.host }}" in annotations[key], key
            assert "{{ $labels.department }}" in annotations[key], key
    assert len(annotations["description"]) > len(annotations["summary"])
    for key in ("summary", "description"):
        english, vietnamese = annotations[key], annotations[f"{key}_vi"]
        # The same labels and values, in whatever order Vietnamese puts them.
        assert sorted(TEMPLATE_EXPRESSION.findall(english)) == sorted(
            TEMPLATE_EXPRESSION.findall(vietnamese)
        ), key
        assert vietnamese != english and unicodedata.normalize("NFC", vietnamese) == vietnamese
    assert annotations["runbook_url_vi"] == annotations["runbook_url"].replace(
        "/docs/runbooks.md", "/docs/vi/runbooks.md"
    )


def runbook_anchors(runbooks: Path = RUNBOOKS) -> set[str]:
    """GitHub's anchors for the level-2 headings of docs/runbooks.md."""
    headings = re.findall(r"^## (.+)$", runbooks.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_points_at_an_existing_section() -> None:
    anchors = runbook_anchors()
    linked = set()
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        assert "/docs/runbooks.md#" in url
        anchor = url.split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"
        linked.add(anchor)
    assert anchors == linked, f"runbook sections without an alert: {anchors - linked}"
    for target in re.findall(r"\]\(#([^)]+)\)", RUNBOOKS.read_text()):
        assert target in anchors, f"broken link #{target} inside runbooks.md"


def test_the_vietnamese_runbooks_have_the_same_sections() -> None:
    """A runbook_url works in either language: the sections are the alerts' names."""
    assert runbook_anchors(RUNBOOKS_VI) == runbook_anchors()
    text = RUNBOOKS_VI.read_text()
    assert unicodedata.normalize("NFC", text) == text
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in runbook_anchors(), f"broken link #{target} inside vi/runbooks.md"


# -- Alertmanager --------------------------------------------------------------------------

AMTOOL = shutil.which("amtool")


def test_alertmanager_config_is_valid() -> None:
    assert AMTOOL, "amtool missing: apt-get install prometheus-alertmanager (tests/run.sh does)"
    result = run(AMTOOL, "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("severity", "receiver"), [("page", "oncall"), ("ticket", "tickets")])
def test_pages_and_tickets_are_routed_apart(severity: str, receiver: str) -> None:
    assert AMTOOL
    result = run(
        AMTOOL,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"severity={severity}",
        "alertname=AgentDown",
        "department=d",
        "host=h",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """The real Alertmanager with the example config, on 127.0.0.1."""
    with run_alertmanager(ALERTMANAGER_CONFIG, tmp_path) as url:
        yield url


def _post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _inhibited(url: str) -> dict[str, bool]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as response:
        found = json.load(response)
    return {
        f"{a['labels']['alertname']}/{a['labels'].get('department')}": bool(
            a["status"]["inhibitedBy"]
        )
        for a in found
    }


def test_department_outage_inhibits_that_departments_server_alerts(alertmanager: str) -> None:
    _post_alerts(
        alertmanager,
        [
            {"alertname": "AgentDown", "severity": "page", "host": "db01", "department": "a"},
            {"alertname": "AgentDown", "severity": "page", "host": "web01", "department": "b"},
        ],
    )
    wait_for(lambda: len(_inhibited(alertmanager)) == 2, message="alerts received")
    assert _inhibited(alertmanager) == {"AgentDown/a": False, "AgentDown/b": False}
    _post_alerts(
        alertmanager, [{"alertname": "DepartmentSilent", "severity": "page", "department": "a"}]
    )
    expected = {"AgentDown/a": True, "AgentDown/b": False, "DepartmentSilent/a": False}
    wait_for(lambda: _inhibited(alertmanager) == expected, message="department a inhibited")


def test_the_vietnamese_notification_template_renders_every_alert(tmp_path: Path) -> None:
    """What the tickets mailbox receives, rendered by amtool from each alert's own text."""
    assert AMTOOL
    sys.path.insert(0, str(RULES))
    try:
        from make_tests import CASES, render  # the annotations promtool's tests expect
    finally:
        sys.path.remove(str(RULES))
    for rule in alerts():
        case = CASES[rule["alert"]]
        labels = {**case.labels, **rule["labels"], "alertname": rule["alert"]}
        annotations = {k: render(v, labels, case.value) for k, v in rule["annotations"].items()}
        data = tmp_path / "data.json"
        data.write_text(
            json.dumps(
                {
                    "receiver": "tickets",
                    "status": "firing",
                    "externalURL": "http://127.0.0.1:9093",
                    "groupLabels": {},
                    "commonLabels": labels,
                    "commonAnnotations": annotations,
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": labels,
                            "annotations": annotations,
                            "startsAt": "2026-12-06T09:00:00Z",
                            "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "",
                            "fingerprint": "1",
                        }
                    ],
                }
            )
        )
        result = run(
            AMTOOL,
            "template",
            "render",
            f"--template.glob={VI_TEMPLATES}",
            f"--template.data={data}",
            '--template.text={{ template "dcguard.vi.subject" . }}\n'
            '{{ template "dcguard.vi.text" . }}',
        )
        assert result.returncode == 0, result.stderr
        subject, *body = result.stdout.splitlines()
        assert subject == f"[CẢNH BÁO] {annotations['summary_vi']}"
        assert annotations["description_vi"] in body
        assert f"Hướng dẫn xử lý: {annotations['runbook_url_vi']}" in body
        assert "Bắt đầu lúc: 09:00:00 06/12/2026" in body
