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


def alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULE_FILES[0].read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, check=False)


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
    assert {"AgentDown", "DepartmentSilent", "CollectorDown", "CollectorNotScraped",
            "BackupStale", "BackupFailed", "BackupMissing", "BackupUnverified",
            "BackupOnSameDevice", "DiskSmartFailing", "DiskSmartDegrading", "RaidDegraded",
            "FilesystemReadOnly", "FilesystemAlmostFull", "FilesystemFillingUp",
            "FilesystemFillingUpFast", "DiskIoErrors", "DataLossRiskHigh", "SshBruteForce",
            "DistributedAttack", "LoginAfterFailures", "AgentSpoolDropping",
            "AgentReportsLost"} <= names


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
    assert set(annotations) == {"summary", "description", "runbook_url"}
    per_host = "host" in rule["expr"] or not re.search(r"\b(by|absent|up)\b", rule["expr"])
    if per_host and rule["alert"] != "DepartmentSilent":
        for key in ("summary", "description"):
            assert "{{ $labels.host }}" in annotations[key], key
            assert "{{ $labels.department }}" in annotations[key], key
    assert len(annotations["description"]) > len(annotations["summary"])


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the level-2 headings of docs/runbooks.md."""
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
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


# -- Alertmanager --------------------------------------------------------------------------

AMTOOL = shutil.which("amtool")


def test_alertmanager_config_is_valid() -> None:
    assert AMTOOL, "amtool missing: apt-get install prometheus-alertmanager (tests/run.sh does)"
    result = run(AMTOOL, "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("severity", "receiver"), [("page", "oncall"), ("ticket", "tickets")])
def test_pages_and_tickets_are_routed_apart(severity: str, receiver: str) -> None:
    assert AMTOOL
    result = run(AMTOOL, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                 f"severity={severity}", "alertname=AgentDown", "department=d", "host=h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """The real Alertmanager with the example config, on 127.0.0.1."""
    with run_alertmanager(ALERTMANAGER_CONFIG, tmp_path) as url:
        yield url


def _post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _inhibited(url: str) -> dict[str, bool]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as response:
        found = json.load(response)
    return {f"{a['labels']['alertname']}/{a['labels'].get('department')}":
            bool(a["status"]["inhibitedBy"]) for a in found}


def test_department_outage_inhibits_that_departments_server_alerts(alertmanager: str) -> None:
    _post_alerts(alertmanager, [
        {"alertname": "AgentDown", "severity": "page", "host": "db01", "department": "a"},
        {"alertname": "AgentDown", "severity": "page", "host": "web01", "department": "b"},
    ])
    wait_for(lambda: len(_inhibited(alertmanager)) == 2, message="alerts received")
    assert _inhibited(alertmanager) == {"AgentDown/a": False, "AgentDown/b": False}
    _post_alerts(alertmanager, [
        {"alertname": "DepartmentSilent", "severity": "page", "department": "a"}])
    expected = {"AgentDown/a": True, "AgentDown/b": False, "DepartmentSilent/a": False}
    wait_for(lambda: _inhibited(alertmanager) == expected, message="department a inhibited")
