"""Dashboards are valid and current, and every panel and rule expression runs on a real Prometheus.

The live test starts a real collector fed by a real agent (tests/support.py)
and the Debian prometheus binary scraping it with dcguard's rules loaded. Each
expression must evaluate without error; each one whose metrics exist in the
scenario (and that is not empty by nature) must return data. Metrics of
features that have not landed yet make their expressions empty, not failing:
extend scenario_agent_config() (and LANDED) as they land, and the same test
starts demanding data from their panels.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.promstack import Prometheus
from tests.storage_helpers import FIXTURES, FakeDisks
from tests.support import Agent, Collector, wait_for

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
HOST, DEPARTMENT = "db01", "so-tu-phap"


def scenario_agent_config(workdir: Path) -> str:
    """TOML added to the scenario agent's config; workdir is a directory for its files.

    A server with something wrong in every area, so every panel and rule has
    data: two recorded disks (one degrading), a degraded md array, kernel I/O
    errors, a fresh and a stale backup on the same disk as their data, a data
    directory in no backup job, and an SSH brute force in its auth log.
    """
    disks = FakeDisks(workdir)
    disks.set("/dev/sda", "smartctl-sata-hdd-healthy-wd181kryz-v7.3.json")
    disks.set("/dev/sdb", "smartctl-sata-hdd-passed-reallocated304-st3500418as-v7.3.json")
    data = workdir / "data"
    data.mkdir()
    (data / "db.sqlite").write_bytes(b"x" * 4096)
    uploads = workdir / "uploads"  # data no backup job covers
    uploads.mkdir()
    (uploads / "avatar.jpg").write_bytes(b"x" * 4096)
    for name, age in (("fresh", 3600), ("stale", 3 * 86400)):
        directory = workdir / f"backup-{name}"
        directory.mkdir()
        dump = directory / "dump.sql.gz"
        # A complete mysqldump: the agent reads dumps to their end (backup_unrestorable).
        dump.write_bytes(
            gzip.compress(
                b"-- MySQL dump 10.13\n"
                + b"y" * 8192
                + b"\n-- Dump completed on 2026-12-05  2:00:01\n"
            )
        )
        stamp = time.time() - age
        os.utime(dump, (stamp, stamp))
    auth_log = workdir / "auth.log"
    now = time.time()
    auth_log.write_text(
        "".join(
            f"{datetime.fromtimestamp(now - 20 + i, timezone.utc).isoformat()} {HOST} "
            f"sshd[{4000 + i}]: Failed password for root from 203.0.113.7 port {52100 + i} ssh2\n"
            for i in range(10)
        )
    )
    return f"""
[storage]
smartctl = "{disks.script}"
mdstat = "{FIXTURES / "mdstat-raid1-healthy-and-degraded-U_-linux-raid-2020.txt"}"
kernel_log = "{FIXTURES / "kernel-io-errors.log"}"

[security.auth_log]
path = "{auth_log}"
start_at = "beginning"

[[backup]]
name = "mysql-nightly"
kind = "files"
rpo = "26h"
path = "{workdir / "backup-fresh"}/*.sql.gz"
source = "{data}"

[[backup]]
name = "files-weekly"
kind = "files"
rpo = "26h"
path = "{workdir / "backup-stale"}/*.sql.gz"
source = "{data}"

[coverage]
roots = []
paths = ["{data}", "{uploads}"]
smb_conf = "{workdir / "no-smb.conf"}"
mysql_conf = "{workdir / "no-my.cnf"}"
postgresql_conf_dir = "{workdir / "no-postgresql"}"
"""


# Families the scenario must produce. Move names here from PENDING as their
# features land and the scenario feeds them.
LANDED = {
    "dcguard_agent_up",
    "dcguard_agent_last_seen_timestamp_seconds",
    "dcguard_agent_info",
    "dcguard_agent_reports_stored_total",
    "dcguard_agent_reports_lost_total",
    "dcguard_agent_spool_dropped_reports_total",
    "dcguard_host_cpu_utilization_ratio",
    "dcguard_host_memory_total_bytes",
    "dcguard_host_memory_available_bytes",
    "dcguard_host_load1",
    "dcguard_host_boot_timestamp_seconds",
    "dcguard_filesystem_size_bytes",
    "dcguard_filesystem_avail_bytes",
    "dcguard_filesystem_readonly",
    "dcguard_disk_smart_healthy",
    "dcguard_disk_smart_attribute_raw",
    "dcguard_raid_degraded",
    "dcguard_raid_disks_active",
    "dcguard_raid_disks_total",
    "dcguard_backup_last_success_timestamp_seconds",
    "dcguard_backup_last_run_success",
    "dcguard_backup_size_bytes",
    "dcguard_backup_rpo_seconds",
    "dcguard_backup_same_device",
    "dcguard_data_location_backed_up",
    "dcguard_data_loss_risk_score",
    "dcguard_data_loss_risk",
    "dcguard_security_events_total",
    "dcguard_security_detections_total",
}
PENDING: set[str] = set()
# Grafana's interval variables, as a dashboard at "last 6 hours" would set them.
GRAFANA_VARS = {"$__rate_interval": "10s", "$__interval": "5s", "$__range": "1h"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dcguard_dashboards", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()


def substitute(expr: str) -> str:
    for name, value in {**GRAFANA_VARS, "$department": DEPARTMENT, "$host": HOST}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def vi_dashboard_files() -> list[Path]:
    return sorted((DASHBOARDS / "vi").glob("*.json"))


# -- static checks -------------------------------------------------------------------------


def test_generated_dashboards_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(DASHBOARDS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in dashboard_files()} == {b.filename for b in GENERATOR.BOARDS}


def test_dashboards_are_valid_with_unique_ids_and_stable_uids() -> None:
    uids = set()
    for path in dashboard_files():
        board = json.loads(path.read_text())
        assert board["uid"].startswith("dcguard-") and len(board["uid"]) <= 40
        uids.add(board["uid"])
        assert board["schemaVersion"] >= 36
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[:2] == ["datasource", "department"], path.name
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}"
                assert target["expr"].strip()
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
    assert uids == {
        "dcguard-province",
        "dcguard-department",
        "dcguard-server",
        "dcguard-backups",
        "dcguard-security",
    }


def test_dashboards_link_to_each_other() -> None:
    """A dashboards dropdown on each, and table rows that open the server/department."""
    texts = {p.name: p.read_text() for p in dashboard_files()}
    for name, text in texts.items():
        board = json.loads(text)
        assert board["links"][0]["tags"] == ["dcguard"], name
    for name in ("province.json", "department.json", "backups.json"):
        assert "/d/dcguard-server/" in texts[name], name
    assert "/d/dcguard-department/" in texts["province.json"]


def _panels(board: dict[str, Any]) -> list[tuple[int, str, Any, list[str]]]:
    return [
        (p["id"], p["type"], p["gridPos"], [t["expr"] for t in p.get("targets", [])])
        for p in board["panels"]
    ]


def test_the_vietnamese_dashboards_are_the_english_ones_in_vietnamese() -> None:
    """Same panels, layout and expressions; own uids and menu; every title in Vietnamese."""
    assert [p.name for p in vi_dashboard_files()] == [p.name for p in dashboard_files()]
    for english_path, vi_path in zip(dashboard_files(), vi_dashboard_files()):
        text = vi_path.read_text(encoding="utf-8")
        english, vi = json.loads(english_path.read_text()), json.loads(text)
        assert unicodedata.normalize("NFC", text) == text
        assert vi["uid"] == english["uid"] + "-vi"
        assert _panels(vi) == _panels(english)
        assert [(v["name"], v.get("definition")) for v in vi["templating"]["list"]] == [
            (v["name"], v.get("definition")) for v in english["templating"]["list"]
        ]
        assert vi["title"] != english["title"] and vi["tags"] == ["dcguard-vi"]
        assert vi["links"][0]["tags"] == ["dcguard-vi"]
        for en_panel, vi_panel in zip(english["panels"], vi["panels"]):
            assert vi_panel["title"] != en_panel["title"], (vi_path.name, en_panel["title"])
        # Links open the Vietnamese boards, and only those.
        assert not re.search(r"/d/dcguard-[a-z]+/", text), vi_path.name
    assert "/d/dcguard-server-vi/" in (DASHBOARDS / "vi/province.json").read_text()


def test_a_panel_without_vietnamese_stops_the_generator() -> None:
    board = GENERATOR.PROVINCE.json()
    board["panels"][1]["title"] = "A panel nobody translated"
    with pytest.raises(SystemExit, match="A panel nobody translated"):
        GENERATOR.vietnamese(board)


def test_provisioning_points_at_the_dashboards() -> None:
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dcguard.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"]
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["type"] == "prometheus"


# -- live Prometheus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Collector ← agent, scraped by Prometheus with the rules, holding a few seconds of data."""
    workdir = tmp_path_factory.mktemp("stack")
    collector = Collector(workdir / "collector")
    collector.start()
    (workdir / "scenario").mkdir()
    agent = Agent(
        workdir / "agent",
        [collector.grpc_address],
        host=HOST,
        department=DEPARTMENT,
        interval="500ms",
        extra_config=scenario_agent_config(workdir / "scenario"),
    )
    prom = Prometheus(workdir / "prometheus", [f"127.0.0.1:{collector.metrics_port}"])
    try:
        agent.start()
        prom.start()
        # Enough history for rate()/increase()/predict_linear(), and the recording
        # rules evaluated over it.
        wait_for(
            lambda: (
                prom.query("count_over_time(dcguard_agent_up[1m]) >= 5")
                and prom.query("count_over_time(province:dcguard_agents:count[1m]) >= 3")
            ),
            timeout=60,
            interval=0.5,
            message="5 scrapes and 3 rule evaluations",
        )
        yield prom
    finally:
        prom.stop()
        agent.stop()
        collector.stop()


def rule_expressions() -> list[tuple[str, str, bool]]:
    """(name, expr, is recording rule) of every rule."""
    out = []
    for path in (ROOT / "deploy/prometheus").glob("dcguard-*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule["record"]
                out.append((name, rule["expr"], "record" in rule))
    return out


def test_scenario_exposes_every_landed_family(prometheus: Prometheus) -> None:
    names = set(prometheus.api("label/__name__/values"))
    assert names >= LANDED, sorted(LANDED - names)
    assert not LANDED & PENDING


def english_panel_queries() -> list[tuple[str, str, bool]]:
    """(where, expression, whether it must return data) of every English panel."""
    return [
        (f"{board.filename} / {title}", query.expr, query.expect_data)
        for board in GENERATOR.BOARDS
        for title, query in board.queries()
    ]


def vietnamese_panel_queries() -> list[tuple[str, str, bool]]:
    """The same for the Vietnamese boards, read from their JSON; the English panel with the
    same expression says whether it must return data."""
    expect = {expr: data for _, expr, data in english_panel_queries()}
    return [
        (f"vi/{path.name} / {panel['title']}", target["expr"], expect[target["expr"]])
        for path in vi_dashboard_files()
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]
        for target in panel.get("targets", [])
    ]


@pytest.mark.parametrize(
    "queries", [english_panel_queries, vietnamese_panel_queries], ids=["en", "vi"]
)
def test_every_panel_expression_evaluates(prometheus: Prometheus, queries) -> None:
    failures, empty, checked, with_data = [], [], 0, 0
    for where, raw, expect_data in queries():
        expr = substitute(raw)
        try:
            result = prometheus.query(expr)
        except AssertionError as exc:
            failures.append(f"{where}: {exc}")
            continue
        checked += 1
        if expect_data and prometheus.present(expr):
            with_data += 1
            if not result and not retried(prometheus, expr):
                empty.append(f"{where}: {expr}")
    assert not failures, "\n".join(failures)
    assert not empty, "no data although its metrics exist:\n" + "\n".join(empty)
    assert checked > 60
    # The host/filesystem/agent panels at least: a check that cannot pass vacuously.
    assert with_data >= 20, with_data


def retried(prometheus: Prometheus, expr: str) -> bool:
    """Data within a few seconds: one slow scrape on a loaded machine makes every series
    stale for a moment, which is not what these tests are about."""
    try:
        wait_for(lambda: prometheus.query(expr), timeout=10, interval=0.5, message=expr)
    except AssertionError:
        return False
    return True


def test_template_variable_queries_return_values(prometheus: Prometheus) -> None:
    for path in dashboard_files() + vi_dashboard_files():
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
            assert match, variable["definition"]
            selector = substitute(match.group(1))
            result = wait_for(
                lambda: prometheus.query(selector),  # noqa: B023 - called before the loop moves on
                timeout=10,
                message=selector,
            )
            values = {series["metric"].get(match.group(2)) for series in result}
            assert values == {HOST if match.group(2) == "host" else DEPARTMENT}, path.name


def test_every_rule_expression_evaluates(prometheus: Prometheus) -> None:
    empty = []
    for name, expr, recording in rule_expressions():
        result = prometheus.query(expr)  # raises with Prometheus' error message
        if recording and prometheus.present(expr) and not result and not retried(prometheus, expr):
            empty.append(name)
    assert not empty, f"recording rules without data although their metrics exist: {empty}"


def test_prometheus_evaluates_every_rule_without_error(prometheus: Prometheus) -> None:
    groups = prometheus.api("rules")["groups"]
    rules: list[dict[str, Any]] = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(rule_expressions())
    wait_for(
        lambda: all(
            r.get("lastEvaluation", "").startswith("20")
            for g in prometheus.api("rules")["groups"]
            for r in g["rules"]
        ),
        timeout=20,
        message="every rule evaluated",
    )
    bad = [
        (r["name"], r.get("lastError"))
        for g in prometheus.api("rules")["groups"]
        for r in g["rules"]
        if r["health"] != "ok"
    ]
    assert not bad


def test_the_scenario_pages_for_what_is_wrong_and_for_nothing_else(prometheus: Prometheus) -> None:
    """The alerts without a `for` that the scenario provokes fire through the real
    pipeline; nothing else about the host fires (this machine's own filesystems may
    legitimately be read-only or full, so Filesystem* alerts are not judged here)."""
    provoked = {"RaidDegraded", "DiskIoErrors", "SshBruteForce"}

    def firing() -> set[str]:
        return {
            a["labels"]["alertname"]
            for a in prometheus.api("alerts")["alerts"]
            if a["labels"].get("host") == HOST
            and a["state"] == "firing"
            and not a["labels"]["alertname"].startswith("Filesystem")
        }

    wait_for(
        lambda: firing() >= provoked,
        timeout=30,
        interval=0.5,
        message=f"{sorted(provoked)} to fire",
    )
    assert firing() == provoked
