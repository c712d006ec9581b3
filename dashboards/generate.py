"""Generates the dcguard Grafana dashboards: python dashboards/generate.py [--check].

The JSON files beside this script are its output; edit the panels here, run
it, and commit both. --check exits non-zero when a file is out of date (CI).
Dashboard uids are stable: links and bookmarks depend on them.

Each board is also written in Vietnamese to vi/ from the same panels: the
same queries, ids and layout, its human text looked up in vi.py (which must
have every string: a new panel's text stops the generator until it does),
uids and the dashboards menu of its own (`<uid>-vi`, tag dcguard-vi) so the
Vietnamese boards link to each other. Grafana's file provider reads vi/ with
the rest.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grafana import (
    Json,
    Panel,
    Query,
    bargauge,
    dashboard,
    department_link,
    server_link,
    stat,
    steps,
    table,
    timeseries,
    variable_datasource,
    variable_query,
)
from vi import TEXT as VIETNAMESE

HERE = Path(__file__).resolve().parent
VI_DIR = HERE / "vi"
VI_TAG = "dcguard-vi"
DEPTS = 'department=~"$department"'
DEPT = 'department="$department"'
HOST = 'host="$host"'
RED_ABOVE_0 = steps(("green", None), ("red", 1))
RISK = steps(("green", None), ("yellow", 1), ("orange", 40), ("red", 70))
RPO_RATIO = steps(("green", None), ("yellow", 0.8), ("red", 1))
DETECTIONS = "dcguard_security_detections_total"


@dataclass(frozen=True)
class Board:
    filename: str
    uid: str
    title: str
    description: str
    variables: list[Json]
    rows: list[tuple[str, list[Panel]]]

    def json(self) -> Json:
        return dashboard(self.uid, self.title, self.description, self.variables, self.rows)

    def queries(self) -> list[tuple[str, Query]]:
        """(panel title, query) for every target: what tests run against Prometheus."""
        return [(p.title, q) for _, panels in self.rows for p in panels for q in p.queries]


def _host(expr: str, *labels: str) -> str:
    """expr once per host (and per its own labels): collectors sharing one store each export
    every host, so a Prometheus scraping each of them has a copy per collector."""
    return f"max by ({', '.join(('host', 'department', *labels))}) ({expr})"


def _events(function: str, selector: str, window: str = "$__rate_interval") -> str:
    """rate or increase of the security events, once per host, type and severity."""
    return _host(
        f"{function}(dcguard_security_events_total{{{selector}}}[{window}])", "type", "severity"
    )


def _detections(selector: str, window: str) -> str:
    """increase of the detections, once per host and detection."""
    return _host(f"increase({DETECTIONS}{{{selector}}}[{window}])", "detection")


def _detected_1h(name: str) -> str:
    """The province's detections of one kind in the last hour (0 if none)."""
    selector = f'{DEPTS},detection="{name}"'
    return f"sum({_detections(selector, '1h')}) or vector(0)"


def _jobs(name: str) -> str:
    """A backup metric once per host and job, in the departments chosen."""
    return _host(f"{name}{{{DEPTS}}}", "job")


def _hosts_with(reason: str) -> str:
    """How many servers have this data-loss risk reason (0 if none)."""
    selector = f'{DEPTS},reason="{reason}"'
    return f"count({_host(f'dcguard_data_loss_risk{{{selector}}}')} == 1) or vector(0)"


def _departments(multi: bool) -> Json:
    return variable_query("department", "Department", "dcguard_agent_info", multi=multi)


def _hosts() -> Json:
    return variable_query("host", "Server", f"dcguard_agent_info{{{DEPT}}}", multi=False)


def _at_risk(selector: str) -> Panel:
    # One row per (server, reason), carrying the server's score: sorted worst first.
    return table(
        "Servers at risk of data loss, worst first",
        Query(
            f"sort_desc(({_host(f'dcguard_data_loss_risk{{{selector}}}', 'reason')} == 1)"
            f" * on (host, department) group_left "
            f"{_host(f'dcguard_data_loss_risk_score{{{selector}}}')})",
            expect_data=False,
        ),
        rename={"Value": "risk score"},
        sort_by="risk score",
        overrides=[server_link(), department_link()],
        description="Each reason a server is at risk, with the server's risk score (0-100).",
    )


def _detections_over_time(selector: str) -> Panel:
    return timeseries(
        "Security detections",
        Query(f"sum by (detection) ({_detections(selector, '$__rate_interval')})", "{{detection}}"),
        bars=True,
        stack=True,
        description="Brute force, distributed attacks, logins after failures, new privileged "
        "accounts.",
    )


def _backup_table(selector: str) -> Panel:
    def job(name: str) -> str:
        return _host(f"{name}{{{selector}}}", "job")

    age = f"time() - {job('dcguard_backup_last_success_timestamp_seconds')}"
    return table(
        "Backup jobs",
        Query(f"sort_desc(({age}) / {job('dcguard_backup_rpo_seconds')})", "age / RPO"),
        Query(age, "age"),
        Query(job("dcguard_backup_rpo_seconds"), "RPO"),
        Query(job("dcguard_backup_last_run_success"), "last run ok"),
        Query(job("dcguard_backup_same_device"), "same device"),
        Query(job("dcguard_backup_size_bytes"), "size"),
        Query(
            f"time() - {job('dcguard_backup_restore_test_timestamp_seconds')}", "last restore test"
        ),
        Query(job("dcguard_backup_restore_test_success"), "restore ok"),
        Query(
            _host(f"dcguard_backup_copy_location{{{selector}}}", "job", "location"), "copy location"
        ),
        rename={
            "Value #A": "age / RPO",
            "Value #B": "age",
            "Value #C": "RPO",
            "Value #D": "last run ok",
            "Value #E": "same device",
            "Value #F": "size",
            "Value #G": "last restore test",
            "Value #H": "restore ok",
            "Value #I": "copy location known",
            "location": "copy location",
        },
        sort_by="age / RPO",
        overrides=[
            server_link(),
            _unit("age", "s"),
            _unit("RPO", "s"),
            _unit("size", "bytes"),
            _unit("age / RPO", "percentunit"),
            _unit("last restore test", "s"),
        ],
        description="Age of the last successful backup against the job's RPO: above 100% is "
        "stale. Last restore test: how long ago a sample of the newest snapshot "
        "was restored and compared (empty: never); restore ok 0 means it failed. "
        "Copy location: same_disk, other_disk, this_host, other_host, offline or "
        "immutable.",
    )


def _unit(field_name: str, unit: str) -> Json:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "unit", "value": unit}],
    }


def _servers_table(selector: str) -> Panel:
    return table(
        "Servers",
        Query(_host(f"dcguard_agent_up{{{selector}}}"), "up"),
        Query(
            f"time() - {_host(f'dcguard_agent_last_seen_timestamp_seconds{{{selector}}}')}",
            "silent for",
        ),
        Query(_host(f"dcguard_data_loss_risk_score{{{selector}}}"), "risk", expect_data=False),
        rename={"Value #A": "up", "Value #B": "silent for", "Value #C": "risk score"},
        overrides=[server_link(), _unit("silent for", "s")],
    )


PROVINCE = Board(
    "province.json",
    "dcguard-province",
    "dcguard / Province",
    "Every department's servers at a glance: who is down, who is at risk of data loss.",
    [variable_datasource(), _departments(multi=True)],
    [
        (
            "Servers",
            [
                stat("Servers reporting", f"sum({_host(f'dcguard_agent_up{{{DEPTS}}}')})"),
                stat(
                    "Servers down",
                    f"count({_host(f'dcguard_agent_up{{{DEPTS}}}')} == 0) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Servers at risk",
                    f"count({_host(f'dcguard_data_loss_risk_score{{{DEPTS}}}')} > 0) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Stale backups",
                    f"sum(department:dcguard_backups_stale:count{{{DEPTS}}}) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                table(
                    "Departments",
                    Query(f"department:dcguard_agents:count{{{DEPTS}}}", "servers"),
                    Query(f"department:dcguard_agents_up:sum{{{DEPTS}}}", "up"),
                    Query(
                        f"department:dcguard_hosts_at_risk:count{{{DEPTS}}}",
                        "at risk",
                        expect_data=False,
                    ),
                    Query(
                        f"department:dcguard_data_loss_risk_score:max{{{DEPTS}}}",
                        "worst risk",
                        expect_data=False,
                    ),
                    rename={
                        "Value #A": "servers",
                        "Value #B": "up",
                        "Value #C": "at risk",
                        "Value #D": "worst risk score",
                    },
                    overrides=[department_link()],
                    width=12,
                ),
                timeseries(
                    "Servers up by department",
                    Query(f"department:dcguard_agents_up:sum{{{DEPTS}}}", "{{department}}"),
                    stack=True,
                ),
            ],
        ),
        (
            "Risk and backups",
            [
                _at_risk(DEPTS),
                bargauge(
                    "Backup freshness by department (oldest job, share of its RPO)",
                    Query(
                        f"department:dcguard_backup_age_rpo_ratio:max{{{DEPTS}}}", "{{department}}"
                    ),
                    unit="percentunit",
                    thresholds=RPO_RATIO,
                ),
                bargauge(
                    "Risk reasons",
                    Query(
                        f"sum by (reason) "
                        f"({_host(f'dcguard_data_loss_risk{{{DEPTS}}}', 'reason')})",
                        "{{reason}}",
                    ),
                    thresholds=RED_ABOVE_0,
                ),
                bargauge(
                    "Servers with no off-host backup copy, by department",
                    Query(
                        "count by (department) ("
                        + _host(f'dcguard_data_loss_risk{{{DEPTS},reason="no_offsite_copy"}}')
                        + " == 1)",
                        "{{department}}",
                        expect_data=False,
                    ),
                    thresholds=RED_ABOVE_0,
                    description="Servers whose every backup lies on the server itself: one "
                    "lost server (fire, theft, ransomware) takes its backups too.",
                ),
            ],
        ),
        (
            "Security and fleet",
            [
                _detections_over_time(DEPTS),
                bargauge(
                    "Agents by version",
                    Query(
                        f"count by (agent_version) "
                        f"({_host(f'dcguard_agent_info{{{DEPTS}}}', 'agent_version')})",
                        "{{agent_version}}",
                    ),
                ),
            ],
        ),
    ],
)

DEPARTMENT = Board(
    "department.json",
    "dcguard-department",
    "dcguard / Department",
    "One department's servers: liveness, data-loss risk, backups and security.",
    [variable_datasource(), _departments(multi=False)],
    [
        (
            "Servers",
            [
                stat("Servers reporting", f"sum({_host(f'dcguard_agent_up{{{DEPT}}}')})"),
                stat(
                    "Servers down",
                    f"count({_host(f'dcguard_agent_up{{{DEPT}}}')} == 0) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Servers at risk",
                    f"count({_host(f'dcguard_data_loss_risk_score{{{DEPT}}}')} > 0) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Worst risk score",
                    f"max(dcguard_data_loss_risk_score{{{DEPT}}})",
                    thresholds=RISK,
                    expect_data=False,
                ),
                _servers_table(DEPT),
            ],
        ),
        ("Risk and backups", [_at_risk(DEPT), _backup_table(DEPT)]),
        (
            "Security",
            [
                _detections_over_time(DEPT),
                timeseries(
                    "Security events by severity",
                    Query(f"sum by (severity) ({_events('rate', DEPT)})", "{{severity}}"),
                    unit="ops",
                    stack=True,
                ),
            ],
        ),
    ],
)

_FS = f"dcguard_filesystem_avail_bytes{{{HOST}}}"
SERVER = Board(
    "server.json",
    "dcguard-server",
    "dcguard / Server",
    "One server: health, filesystems with their fill forecast, disks, RAID, backups, security.",
    [variable_datasource(), _departments(multi=False), _hosts()],
    [
        (
            "Health",
            [
                stat(
                    "Reporting",
                    f"dcguard_agent_up{{{HOST}}}",
                    thresholds=steps(("red", None), ("green", 1)),
                ),
                stat(
                    "Silent for",
                    f"time() - dcguard_agent_last_seen_timestamp_seconds{{{HOST}}}",
                    unit="s",
                    thresholds=steps(("green", None), ("red", 120)),
                ),
                stat(
                    "Risk score",
                    f"dcguard_data_loss_risk_score{{{HOST}}}",
                    thresholds=RISK,
                    expect_data=False,
                ),
                stat(
                    "Up since",
                    f"dcguard_host_boot_timestamp_seconds{{{HOST}}} * 1000",
                    unit="dateTimeFromNow",
                ),
                timeseries(
                    "CPU busy",
                    Query(f"dcguard_host_cpu_utilization_ratio{{{HOST}}}", "cpu"),
                    unit="percentunit",
                    width=8,
                ),
                timeseries(
                    "Memory available",
                    Query(
                        f"dcguard_host_memory_available_bytes{{{HOST}}} / "
                        f"dcguard_host_memory_total_bytes{{{HOST}}}",
                        "available",
                    ),
                    unit="percentunit",
                    width=8,
                ),
                timeseries("Load", Query(f"dcguard_host_load1{{{HOST}}}", "load1"), width=8),
                table(
                    "Risk reasons",
                    Query(f"dcguard_data_loss_risk{{{HOST}}} == 1", expect_data=False),
                    hide=("Time", "__name__", "job", "instance", "Value"),
                    height=5,
                ),
            ],
        ),
        (
            "Filesystems",
            [
                table(
                    "Filesystems",
                    Query(f"1 - {_FS} / dcguard_filesystem_size_bytes{{{HOST}}}", "used"),
                    Query(f"dcguard_filesystem_size_bytes{{{HOST}}}", "size"),
                    Query(
                        f"(predict_linear({_FS}[6h], 24 * 3600) < 0) * 0 + 1 or {_FS} * 0",
                        "full within 24 h",
                    ),
                    Query(f"dcguard_filesystem_readonly{{{HOST}}}", "read-only"),
                    rename={
                        "Value #A": "used",
                        "Value #B": "size",
                        "Value #C": "full within 24 h",
                        "Value #D": "read-only",
                    },
                    overrides=[_unit("used", "percentunit"), _unit("size", "bytes")],
                    hide=("Time", "__name__", "job", "instance", "host", "department"),
                ),
                timeseries(
                    "Free space, with the 6 h trend 24 h ahead",
                    Query(_FS, "{{mountpoint}}"),
                    Query(
                        f"clamp_min(predict_linear({_FS}[6h], 24 * 3600), 0)",
                        "{{mountpoint}} in 24 h",
                    ),
                    unit="bytes",
                    width=24,
                ),
            ],
        ),
        (
            "Disks and RAID",
            [
                table(
                    "SMART health",
                    Query(f"dcguard_disk_smart_healthy{{{HOST}}}", expect_data=False),
                    rename={"Value": "healthy"},
                    width=12,
                    hide=("Time", "__name__", "job", "instance", "host", "department"),
                ),
                table(
                    "SMART failure predictors (raw)",
                    Query(
                        f"dcguard_disk_smart_attribute_raw{{{HOST},"
                        f'attribute=~"5|187|188|197|198"}}',
                        expect_data=False,
                    ),
                    rename={"Value": "raw"},
                    width=12,
                    hide=("Time", "__name__", "job", "instance", "host", "department"),
                ),
                table(
                    "SMART readable or asleep",
                    Query(f"dcguard_disk_smart_available{{{HOST}}}", expect_data=False),
                    Query(f"dcguard_disk_standby{{{HOST}}}", expect_data=False),
                    rename={"Value #A": "readable", "Value #B": "asleep"},
                    width=12,
                    description="asleep 1: the disk is in standby and was not woken; its SMART "
                    "values are the last read (none if it slept since the agent "
                    "started). readable 0 and asleep 0: smartctl could not read "
                    "it; the agent's smart source status says why.",
                    hide=("Time", "__name__", "job", "instance", "host", "department"),
                ),
                table(
                    "RAID arrays",
                    Query(f"dcguard_raid_degraded{{{HOST}}}", expect_data=False),
                    Query(f"dcguard_raid_disks_active{{{HOST}}}", expect_data=False),
                    Query(f"dcguard_raid_disks_total{{{HOST}}}", expect_data=False),
                    rename={"Value #A": "degraded", "Value #B": "active", "Value #C": "total"},
                    width=12,
                    hide=("Time", "__name__", "job", "instance", "host", "department"),
                ),
            ],
        ),
        (
            "Backups",
            [
                _backup_table(HOST),
                table(
                    "Data locations",
                    Query(f"sort(dcguard_data_location_backed_up{{{HOST}}})"),
                    rename={"Value": "backed up"},
                    hide=("Time", "__name__", "job", "instance", "host", "department"),
                    description="Every directory the agent found holding data (database "
                    "data directories, Samba shares, web roots, /srv, /home, named paths): "
                    "backed up 0 means no backup job covers it (risk reason "
                    "data_not_backed_up).",
                ),
            ],
        ),
        (
            "Security",
            [
                timeseries(
                    "Security events by type",
                    Query(
                        f"sum by (type, severity) ({_events('increase', HOST)})",
                        "{{type}} ({{severity}})",
                    ),
                    bars=True,
                    stack=True,
                ),
                _detections_over_time(HOST),
            ],
        ),
    ],
)

BACKUPS = Board(
    "backups.json",
    "dcguard-backups",
    "dcguard / Backups",
    "Every backup job of the province: age against its RPO, failures, same-device backups.",
    [variable_datasource(), _departments(multi=True)],
    [
        (
            "Summary",
            [
                stat("Backup jobs", f"count({_jobs('dcguard_backup_rpo_seconds')}) or vector(0)"),
                stat(
                    "Stale",
                    f"sum(department:dcguard_backups_stale:count{{{DEPTS}}}) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Last run failed",
                    f"sum(department:dcguard_backups_failed:count{{{DEPTS}}}) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "On the same disk",
                    f"count({_jobs('dcguard_backup_same_device')} == 1) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Servers without backup", _hosts_with("backup_missing"), thresholds=RED_ABOVE_0
                ),
                stat(
                    "Restore test failed",
                    f"count({_jobs('dcguard_backup_restore_test_success')} == 0) or vector(0)",
                    thresholds=RED_ABOVE_0,
                ),
                stat("Never verified", _hosts_with("backup_unverified"), thresholds=RED_ABOVE_0),
            ],
        ),
        (
            "Jobs",
            [
                _backup_table(DEPTS),
                timeseries(
                    "Oldest backup by department (share of its RPO)",
                    Query(
                        f"department:dcguard_backup_age_rpo_ratio:max{{{DEPTS}}}", "{{department}}"
                    ),
                    unit="percentunit",
                ),
                timeseries(
                    "Backup size",
                    Query(f"dcguard_backup_size_bytes{{{DEPTS}}}", "{{host}} {{job}}"),
                    unit="bytes",
                ),
            ],
        ),
    ],
)

SECURITY = Board(
    "security.json",
    "dcguard-security",
    "dcguard / Security",
    "Security events and detections across the province, for the SOC.",
    [variable_datasource(), _departments(multi=True)],
    [
        (
            "Detections",
            [
                stat(
                    "Servers with ransomware signs",
                    _hosts_with("ransomware_suspected"),
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Ransomware spreading (1 h)",
                    _detected_1h("ransomware_spreading"),
                    thresholds=RED_ABOVE_0,
                ),
                stat("Brute force (1 h)", _detected_1h("brute_force"), thresholds=RED_ABOVE_0),
                stat(
                    "Distributed attacks (1 h)",
                    _detected_1h("distributed_attack"),
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "Logins after failures (1 h)",
                    _detected_1h("success_after_failures"),
                    thresholds=RED_ABOVE_0,
                ),
                stat(
                    "New privileged accounts (1 h)",
                    _detected_1h("new_privileged_account"),
                    thresholds=RED_ABOVE_0,
                ),
                _detections_over_time(DEPTS),
                timeseries(
                    "Detections by department",
                    Query(
                        f"sum by (department) ({_detections(DEPTS, '$__rate_interval')})",
                        "{{department}}",
                    ),
                    bars=True,
                    stack=True,
                ),
            ],
        ),
        (
            "Events",
            [
                timeseries(
                    "Events by severity",
                    Query(f"sum by (severity) ({_events('rate', DEPTS)})", "{{severity}}"),
                    unit="ops",
                    stack=True,
                ),
                timeseries(
                    "Events by type",
                    Query(f"sum by (type) ({_events('rate', DEPTS)})", "{{type}}"),
                    unit="ops",
                    stack=True,
                ),
                table(
                    "Servers with the most events (last hour)",
                    Query(
                        f"sort_desc(topk(20, sum by (host, department) "
                        f"({_events('increase', DEPTS, '1h')})))"
                    ),
                    rename={"Value": "events"},
                    sort_by="events",
                    overrides=[server_link(), department_link()],
                ),
            ],
        ),
    ],
)

BOARDS = (PROVINCE, DEPARTMENT, SERVER, BACKUPS, SECURITY)


# Where a dashboard holds text people read; expressions, label names and ids are elsewhere.
_HUMAN_KEYS = frozenset({"title", "description", "label", "displayName", "legendFormat"})
_PLACEHOLDERS = re.compile(r"\{\{.*?\}\}|\$\{.*?\}")
_BOARD_LINK = re.compile(r"/d/(dcguard-[a-z]+)/\1")


def _words(text: str) -> bool:
    """Whether text says anything beyond placeholders ("{{department}}" does not)."""
    return any(c.isalpha() for c in _PLACEHOLDERS.sub("", text)) and text != "__auto"


def vietnamese(board: Json) -> Json:
    """The Vietnamese copy of an English dashboard's JSON (see the module's docstring)."""
    missing: list[str] = []

    def say(text: str) -> str:
        if text in VIETNAMESE:
            return VIETNAMESE[text]
        if _words(text):
            missing.append(text)
        return text

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: Json = {}
        for key, value in node.items():
            if key == "renameByName":
                out[key] = {name: say(shown) for name, shown in value.items()}
            elif key == "matcher" and value.get("id") == "byName":
                # A renamed column is matched by its shown name; a label column (host) is not
                # renamed, and keeps its name.
                options = value["options"]
                out[key] = {**value, "options": VIETNAMESE.get(options, options)}
            elif key in _HUMAN_KEYS and isinstance(value, str):
                out[key] = say(value)
            elif key == "url" and isinstance(value, str):
                out[key] = _BOARD_LINK.sub(r"/d/\1-vi/\1-vi", value)
            elif key == "tags" and value == ["dcguard"]:
                out[key] = [VI_TAG]
            else:
                out[key] = walk(value)
        return out

    translated: Json = walk(board)
    translated["uid"] = f"{board['uid']}-vi"
    if missing:
        raise SystemExit(
            "dashboards/vi.py has no Vietnamese for: "
            + "; ".join(repr(m) for m in dict.fromkeys(missing))
        )
    return translated


def _text(board: Json) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(board: Board) -> str:
    return json.dumps(board.json(), indent=2, sort_keys=True) + "\n"


def outputs() -> list[tuple[Path, str]]:
    """Every file this script writes, with its content: the English boards, then vi/."""
    english = [(HERE / board.filename, render(board)) for board in BOARDS]
    translated = [(VI_DIR / board.filename, _text(vietnamese(board.json()))) for board in BOARDS]
    return english + translated


def main(argv: list[str]) -> int:
    stale = []
    for path, text in outputs():
        if argv == ["--check"]:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(HERE)))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date: {', '.join(stale)}: run python dashboards/generate.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
