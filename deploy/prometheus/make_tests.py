"""Writes deploy/prometheus/tests/dcguard_test.yml: a firing and a quiet case for every alert.

Each case below is the input series and what on-call must see. The expected
annotations are the rule's own templates with the case's labels filled in, so
a rule whose aggregation drops a label its text names (an empty "on  in
department ") fails under promtool. RECORDINGS then checks every recording
rule on a scrape of two collectors sharing one store (each exports every
host): each host must count once, as with one collector. Run: python deploy/prometheus/make_tests.py
(tests/test_rules.py checks the written file is current).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULE_FILES = ("dcguard-alerts.yml", "dcguard-recording.yml")
OUTPUT = HERE / "tests" / "dcguard_test.yml"

DB01 = 'host="db01",department="so-tu-phap"'
WEB02 = 'host="web02",department="so-tu-phap"'
HOST_LABELS = {"host": "db01", "department": "so-tu-phap"}
SHARE = 'path="/srv/samba/ke-toan",kind="samba"'
COLLECTOR = 'job="dcguard-collector",instance="collector:9740"'
FS = f'{DB01},mountpoint="/srv",device="/dev/sdb1",fstype="ext4"'
FS_LABELS = {**HOST_LABELS, "mountpoint": "/srv", "device": "/dev/sdb1", "fstype": "ext4"}


@dataclass(frozen=True)
class Scenario:
    series: dict[str, str]
    at: str
    interval: str = "1m"


@dataclass(frozen=True)
class Case:
    """fires: the alert fires at fires.at with labels (and $value rendered as value);
    quiet: it must not fire at quiet.at."""

    fires: Scenario
    quiet: Scenario
    labels: dict[str, str] = field(default_factory=lambda: dict(HOST_LABELS))
    value: str = ""


def _detection(name: str) -> Case:
    metric = f'dcguard_security_detections_total{{{DB01},detection="{name}"}}'
    # Fires on a counter that first appears with the detection (the hard case
    # for increase()); quiet on an old count that no longer moves.
    return Case(fires=Scenario({metric: "_x3 1x10"}, "5m"), quiet=Scenario({metric: "5x30"}, "25m"))


CASES: dict[str, Case] = {
    "AgentDown": Case(
        fires=Scenario({f"dcguard_agent_last_seen_timestamp_seconds{{{DB01}}}": "0x10"}, "3m"),
        quiet=Scenario({f"dcguard_agent_last_seen_timestamp_seconds{{{DB01}}}": "0+60x10"}, "9m"),
        value="3m 0s",
    ),
    "DepartmentSilent": Case(
        fires=Scenario(
            {
                f"dcguard_agent_last_seen_timestamp_seconds{{{DB01}}}": "0x10",
                f"dcguard_agent_last_seen_timestamp_seconds{{{WEB02}}}": "0x10",
            },
            "5m",
        ),
        # One silent server of two is AgentDown, not an outage.
        quiet=Scenario(
            {
                f"dcguard_agent_last_seen_timestamp_seconds{{{DB01}}}": "0x10",
                f"dcguard_agent_last_seen_timestamp_seconds{{{WEB02}}}": "0+60x10",
            },
            "5m",
        ),
        labels={"department": "so-tu-phap"},
        value="2",
    ),
    "AgentSpoolDropping": Case(
        fires=Scenario({f"dcguard_agent_spool_dropped_reports_total{{{DB01}}}": "0x3 5x10"}, "6m"),
        quiet=Scenario({f"dcguard_agent_spool_dropped_reports_total{{{DB01}}}": "7x30"}, "25m"),
    ),
    "AgentReportsLost": Case(
        fires=Scenario({f"dcguard_agent_reports_lost_total{{{DB01}}}": "0x3 2x10"}, "6m"),
        quiet=Scenario({f"dcguard_agent_reports_lost_total{{{DB01}}}": "2x30"}, "25m"),
    ),
    "AgentClockSkew": Case(
        fires=Scenario({f"dcguard_agent_clock_skew_seconds{{{DB01}}}": "7200x20"}, "15m"),
        # A backlog being drained (negative) and a clock a few seconds off stay quiet.
        quiet=Scenario({f"dcguard_agent_clock_skew_seconds{{{DB01}}}": "-86400x10 3x10"}, "15m"),
        value="2h 0m 0s",
    ),
    "AgentReportsRejected": Case(
        fires=Scenario(
            {
                f"dcguard_agent_reports_rejected_total{{{DB01},{COLLECTOR},"
                f'reason="too_large"}}': "0x3 4x10"
            },
            "6m",
        ),
        quiet=Scenario(
            {
                f"dcguard_agent_reports_rejected_total{{{DB01},{COLLECTOR},"
                f'reason="rate_limited"}}': "0+5x30"
            },
            "25m",
        ),
        labels={**HOST_LABELS, "reason": "too_large"},
        value="4",
    ),
    "CollectorDown": Case(
        fires=Scenario({f"up{{{COLLECTOR}}}": "0x10"}, "5m"),
        quiet=Scenario({f"up{{{COLLECTOR}}}": "1x10"}, "5m"),
        labels={"job": "dcguard-collector", "instance": "collector:9740"},
    ),
    "CollectorNotScraped": Case(
        fires=Scenario({'up{job="node",instance="n:9100"}': "1x10"}, "10m"),
        quiet=Scenario({f"up{{{COLLECTOR}}}": "1x10"}, "10m"),
        labels={"job": "dcguard-collector"},
    ),
    "CollectorRejectingReports": Case(
        fires=Scenario(
            {
                f"dcguard_collector_reports_rejected_total{{{COLLECTOR},"
                f'reason="bad_sequence"}}': "0x3 4x10"
            },
            "6m",
        ),
        quiet=Scenario(
            {
                f"dcguard_collector_reports_rejected_total{{{COLLECTOR},"
                f'reason="bad_sequence"}}': "4x30"
            },
            "25m",
        ),
        labels={"instance": "collector:9740", "reason": "bad_sequence"},
    ),
    "BackupStale": Case(
        fires=Scenario(
            {
                f'dcguard_backup_last_success_timestamp_seconds{{{DB01},job="nightly"}}': "0x150",
                f'dcguard_backup_rpo_seconds{{{DB01},job="nightly"}}': "3600x150",
            },
            "2h",
        ),
        quiet=Scenario(
            {
                f'dcguard_backup_last_success_timestamp_seconds{{{DB01},job="nightly"}}': (
                    "0+60x150"
                ),
                f'dcguard_backup_rpo_seconds{{{DB01},job="nightly"}}': "3600x150",
            },
            "2h",
        ),
        labels={**HOST_LABELS, "job": "nightly"},
        value="2h 0m 0s",
    ),
    "BackupFailed": Case(
        fires=Scenario({f'dcguard_backup_last_run_success{{{DB01},job="nightly"}}': "0x20"}, "10m"),
        quiet=Scenario({f'dcguard_backup_last_run_success{{{DB01},job="nightly"}}': "1x20"}, "10m"),
        labels={**HOST_LABELS, "job": "nightly"},
    ),
    "BackupMissing": Case(
        fires=Scenario(
            {f'dcguard_data_loss_risk{{{DB01},reason="backup_missing"}}': "1x30"}, "20m"
        ),
        quiet=Scenario({f'dcguard_data_loss_risk{{{DB01},reason="backup_stale"}}': "1x30"}, "20m"),
        labels={**HOST_LABELS, "reason": "backup_missing"},
    ),
    "BackupNotChecked": Case(
        fires=Scenario({f'dcguard_backup_check_error{{{DB01},job="nas"}}': "1x90"}, "70m"),
        # A repository out of reach for minutes (a network blip) is not yet a ticket.
        quiet=Scenario({f'dcguard_backup_check_error{{{DB01},job="nas"}}': "0x30 1x60"}, "70m"),
        labels={**HOST_LABELS, "job": "nas"},
    ),
    "BackupUnverified": Case(
        fires=Scenario(
            {f'dcguard_data_loss_risk{{{DB01},reason="backup_unverified"}}': "1x90"}, "70m"
        ),
        # Not yet an hour: a verification may be under way.
        quiet=Scenario(
            {f'dcguard_data_loss_risk{{{DB01},reason="backup_unverified"}}': "1x90"}, "30m"
        ),
        labels={**HOST_LABELS, "reason": "backup_unverified"},
    ),
    "BackupOnSameDevice": Case(
        fires=Scenario({f'dcguard_backup_same_device{{{DB01},job="nightly"}}': "1x90"}, "70m"),
        quiet=Scenario({f'dcguard_backup_same_device{{{DB01},job="nightly"}}': "0x90"}, "70m"),
        labels={**HOST_LABELS, "job": "nightly"},
    ),
    "BackupUnrestorable": Case(
        fires=Scenario(
            {f'dcguard_backup_restore_test_success{{{DB01},job="nightly"}}': "0x5"}, "1m"
        ),
        quiet=Scenario(
            {f'dcguard_backup_restore_test_success{{{DB01},job="nightly"}}': "1x5"}, "1m"
        ),
        labels={**HOST_LABELS, "job": "nightly"},
    ),
    "NoOffsiteCopy": Case(
        fires=Scenario(
            {f'dcguard_data_loss_risk{{{DB01},reason="no_offsite_copy"}}': "1x90"}, "70m"
        ),
        # Not yet an hour: a copy to another host may be starting.
        quiet=Scenario(
            {f'dcguard_data_loss_risk{{{DB01},reason="no_offsite_copy"}}': "1x90"}, "30m"
        ),
        labels={**HOST_LABELS, "reason": "no_offsite_copy"},
    ),
    "DataNotBackedUp": Case(
        fires=Scenario({f"dcguard_data_location_backed_up{{{DB01},{SHARE}}}": "0x90"}, "70m"),
        # Not yet an hour: the share may be being added to a job.
        quiet=Scenario({f"dcguard_data_location_backed_up{{{DB01},{SHARE}}}": "0x90"}, "30m"),
        labels={**HOST_LABELS, "path": "/srv/samba/ke-toan", "kind": "samba"},
    ),
    "DiskSmartFailing": Case(
        fires=Scenario(
            {
                f'dcguard_disk_smart_healthy{{{DB01},device="/dev/sda",model="ST4000",'
                f'serial="Z1"}}': "0x5"
            },
            "1m",
        ),
        quiet=Scenario(
            {
                f'dcguard_disk_smart_healthy{{{DB01},device="/dev/sda",model="ST4000",'
                f'serial="Z1"}}': "1x5"
            },
            "1m",
        ),
        labels={**HOST_LABELS, "device": "/dev/sda", "model": "ST4000", "serial": "Z1"},
    ),
    "DiskSmartDegrading": Case(
        fires=Scenario(
            {f'dcguard_disk_smart_attribute_raw{{{DB01},device="/dev/sda",attribute="5"}}': "8x30"},
            "20m",
        ),
        # Power-on hours (9) are not a failure predictor.
        quiet=Scenario(
            {
                f'dcguard_disk_smart_attribute_raw{{{DB01},device="/dev/sda",'
                f'attribute="5"}}': "0x30",
                f'dcguard_disk_smart_attribute_raw{{{DB01},device="/dev/sda",'
                f'attribute="9"}}': "12345x30",
            },
            "20m",
        ),
        labels={**HOST_LABELS, "device": "/dev/sda"},
    ),
    "RaidDegraded": Case(
        fires=Scenario({f'dcguard_raid_degraded{{{DB01},array="md0"}}': "1x5"}, "1m"),
        quiet=Scenario({f'dcguard_raid_degraded{{{DB01},array="md0"}}': "0x5"}, "1m"),
        labels={**HOST_LABELS, "array": "md0"},
    ),
    "DiskIoErrors": Case(
        fires=Scenario({f'dcguard_data_loss_risk{{{DB01},reason="disk_io_errors"}}': "1x5"}, "1m"),
        quiet=Scenario({f'dcguard_data_loss_risk{{{DB01},reason="disk_io_errors"}}': "0x5"}, "1m"),
        labels={**HOST_LABELS, "reason": "disk_io_errors"},
    ),
    "FilesystemReadOnly": Case(
        fires=Scenario({f"dcguard_filesystem_readonly{{{FS}}}": "1x5"}, "1m"),
        quiet=Scenario(
            {
                f"dcguard_filesystem_readonly{{{FS}}}": "0x5",
                f'dcguard_filesystem_readonly{{{DB01},mountpoint="/media/cdrom",'
                f'device="/dev/sr0",fstype="iso9660"}}': "1x5",
            },
            "1m",
        ),
        labels=FS_LABELS,
    ),
    "FilesystemAlmostFull": Case(
        fires=Scenario(
            {
                f"dcguard_filesystem_avail_bytes{{{FS}}}": "5x30",
                f"dcguard_filesystem_size_bytes{{{FS}}}": "100x30",
            },
            "20m",
        ),
        quiet=Scenario(
            {
                f"dcguard_filesystem_avail_bytes{{{FS}}}": "50x30",
                f"dcguard_filesystem_size_bytes{{{FS}}}": "100x30",
            },
            "20m",
        ),
        labels=FS_LABELS,
        value="5%",
    ),
    "FilesystemFillingUp": Case(
        # 6% of the disk an hour, 29% left at 90 min: full in under 24 h, not
        # in 4 h. The filesystem is read-only meanwhile: the alert stays.
        fires=Scenario(
            {
                f"dcguard_filesystem_avail_bytes{{{FS}}}": "38-0.2x50",
                f"dcguard_filesystem_size_bytes{{{FS}}}": "100x50",
                f"dcguard_filesystem_readonly{{{FS}}}": "0x3 1x47",
            },
            "90m",
            "2m",
        ),
        quiet=Scenario(
            {
                f"dcguard_filesystem_avail_bytes{{{FS}}}": "38x50",
                f"dcguard_filesystem_size_bytes{{{FS}}}": "100x50",
            },
            "90m",
            "2m",
        ),
        labels=FS_LABELS,
    ),
    "FilesystemFillingUpFast": Case(
        fires=Scenario(
            {
                f"dcguard_filesystem_avail_bytes{{{FS}}}": "18-0.2x50",
                f"dcguard_filesystem_size_bytes{{{FS}}}": "100x50",
                f"dcguard_filesystem_readonly{{{FS}}}": "0x3 1x47",
            },
            "50m",
            "2m",
        ),
        # The same trend as FilesystemFillingUp's firing case: a day, not 4 h.
        quiet=Scenario(
            {
                f"dcguard_filesystem_avail_bytes{{{FS}}}": "38-0.2x50",
                f"dcguard_filesystem_size_bytes{{{FS}}}": "100x50",
            },
            "90m",
            "2m",
        ),
        labels=FS_LABELS,
    ),
    "DataLossRiskHigh": Case(
        fires=Scenario({f"dcguard_data_loss_risk_score{{{DB01}}}": "80x30"}, "20m"),
        quiet=Scenario({f"dcguard_data_loss_risk_score{{{DB01}}}": "60x30"}, "20m"),
        value="80",
    ),
    "RansomwareSuspected": Case(
        # Pages at the first evaluation that sees the reason: no `for`.
        fires=Scenario(
            {f'dcguard_data_loss_risk{{{DB01},reason="ransomware_suspected"}}': "0x3 1x10"}, "4m"
        ),
        # Another reason active, the ransomware one at 0 (its window over): quiet.
        quiet=Scenario(
            {
                f'dcguard_data_loss_risk{{{DB01},reason="ransomware_suspected"}}': "1x3 0x20",
                f'dcguard_data_loss_risk{{{DB01},reason="backup_stale"}}': "1x20",
            },
            "10m",
        ),
    ),
    "SshBruteForce": _detection("brute_force"),
    "DistributedAttack": _detection("distributed_attack"),
    "RansomwareSpreading": _detection("ransomware_spreading"),
    "LoginAfterFailures": _detection("success_after_failures"),
    "NewPrivilegedAccount": _detection("new_privileged_account"),
}

# Two collectors on one PostgreSQL store, each scraped as its own target.
TWO_COLLECTORS = (
    'job="dcguard-collector",instance="collector-a:9740"',
    'job="dcguard-collector",instance="collector-b:9740"',
)
DEPT = '{department="so-tu-phap"}'


@dataclass(frozen=True)
class Recording:
    """Host series (each exported by both collectors) and what the rules record at `at`."""

    series: dict[str, str]
    at: str
    expected: dict[str, float]
    interval: str = "1m"


def _from_both(series: dict[str, str]) -> dict[str, str]:
    """Each host series as both collectors export it: the same values, their own instance."""
    both: dict[str, str] = {}
    for name, values in series.items():
        metric, labels = name[:-1].split("{", 1)
        for collector in TWO_COLLECTORS:
            # A backup job's own `job` label: honor_labels keeps it over the scrape job's.
            target = collector.split(",", 1)[1] if 'job="' in labels else collector
            both[f"{metric}{{{labels},{target}}}"] = values
    return both


RECORDINGS: list[Recording] = [
    Recording(  # db01 reports, web02 has been silent since the start
        series={
            f"dcguard_agent_last_seen_timestamp_seconds{{{DB01}}}": "0+60x10",
            f"dcguard_agent_last_seen_timestamp_seconds{{{WEB02}}}": "0x10",
            f"dcguard_agent_up{{{DB01}}}": "1x10",
            f"dcguard_agent_up{{{WEB02}}}": "0x10",
            f'dcguard_agent_info{{{DB01},agent_version="1.2.0"}}': "1x10",
            f'dcguard_agent_info{{{WEB02},agent_version="1.2.0"}}': "1x10",
        },
        at="5m",
        expected={
            f"department:dcguard_agents:count{DEPT}": 2,
            f"department:dcguard_agents_up:sum{DEPT}": 1,
            f"department:dcguard_agents_silent:count{DEPT}": 1,
            "province:dcguard_agents:count": 2,
            "province:dcguard_agents_up:sum": 1,
            'province:dcguard_agents_by_version:count{agent_version="1.2.0"}': 2,
        },
    ),
    Recording(
        series={
            f"dcguard_data_loss_risk_score{{{DB01}}}": "80x10",
            f"dcguard_data_loss_risk_score{{{WEB02}}}": "0x10",
            f'dcguard_data_loss_risk{{{DB01},reason="backup_stale"}}': "1x10",
            f'dcguard_data_loss_risk{{{WEB02},reason="backup_stale"}}': "0x10",
        },
        at="5m",
        expected={
            f"department:dcguard_data_loss_risk_score:max{DEPT}": 80,
            f"department:dcguard_hosts_at_risk:count{DEPT}": 1,
            "province:dcguard_hosts_at_risk:count": 1,
            'department:dcguard_data_loss_risk_reasons:count{department="so-tu-phap",'
            'reason="backup_stale"}': 1,
            'province:dcguard_data_loss_risk_reasons:count{reason="backup_stale"}': 1,
        },
    ),
    Recording(  # db01's nightly job last succeeded at 0 (2 h ago, RPO 1 h) and failed since
        series={
            f'dcguard_backup_last_success_timestamp_seconds{{{DB01},job="nightly"}}': "0x150",
            f'dcguard_backup_last_success_timestamp_seconds{{{WEB02},job="nightly"}}': "0+60x150",
            f'dcguard_backup_rpo_seconds{{{DB01},job="nightly"}}': "3600x150",
            f'dcguard_backup_rpo_seconds{{{WEB02},job="nightly"}}': "3600x150",
            f'dcguard_backup_last_run_success{{{DB01},job="nightly"}}': "0x150",
            f'dcguard_backup_last_run_success{{{WEB02},job="nightly"}}': "1x150",
        },
        at="2h",
        expected={
            f'backup:dcguard_backup_age_seconds{{{DB01},job="nightly"}}': 7200,
            f'backup:dcguard_backup_age_seconds{{{WEB02},job="nightly"}}': 0,
            f'backup:dcguard_backup_age_rpo_ratio{{{DB01},job="nightly"}}': 2,
            f'backup:dcguard_backup_age_rpo_ratio{{{WEB02},job="nightly"}}': 0,
            f"department:dcguard_backup_age_seconds:max{DEPT}": 7200,
            f"department:dcguard_backup_age_rpo_ratio:max{DEPT}": 2,
            f"department:dcguard_backups_stale:count{DEPT}": 1,
            f"department:dcguard_backups_failed:count{DEPT}": 1,
        },
    ),
    Recording(  # one brute-force detection a minute; one warning event a second
        series={
            f'dcguard_security_detections_total{{{DB01},detection="brute_force"}}': "0+1x100",
            f'dcguard_security_events_total{{{DB01},type="ssh_login_failed",'
            f'severity="warning"}}': "0+60x100",
        },
        at="90m",
        expected={
            'department:dcguard_security_detections:increase1h{department="so-tu-phap",'
            'detection="brute_force"}': 60,
            'province:dcguard_security_detections:increase1h{detection="brute_force"}': 60,
            'department:dcguard_security_events:rate5m{department="so-tu-phap",'
            'severity="warning"}': 1,
        },
    ),
]


_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
_VALUE = re.compile(r"\{\{ \$value( \| \w+)? \}\}")


def alerts() -> dict[str, dict[str, Any]]:
    """Every alerting rule of the rule files, by name."""
    found: dict[str, dict[str, Any]] = {}
    for name in RULE_FILES:
        for group in yaml.safe_load((HERE / name).read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = rule
    return found


def render(template: str, labels: dict[str, str], value: str) -> str:
    """The template as Prometheus renders it for these labels and value text."""
    text = _LABEL.sub(lambda m: labels.get(m.group(1), ""), template)
    return _VALUE.sub(lambda _: value, text)


def _test(alertname: str, scenario: Scenario, expected: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "interval": scenario.interval,
        "input_series": [{"series": s, "values": v} for s, v in scenario.series.items()],
        "alert_rule_test": [
            {"eval_time": scenario.at, "alertname": alertname, "exp_alerts": expected}
        ],
    }


def recording_rules() -> list[str]:
    """Every recording rule's name."""
    return [
        rule["record"]
        for name in RULE_FILES
        for group in yaml.safe_load((HERE / name).read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


def _recording_test(recording: Recording) -> dict[str, Any]:
    return {
        "interval": recording.interval,
        "input_series": [
            {"series": s, "values": v} for s, v in _from_both(recording.series).items()
        ],
        "promql_expr_test": [
            {
                "expr": name,
                "eval_time": recording.at,
                "exp_samples": [{"labels": name if "{" in name else name + "{}", "value": value}],
            }
            for name, value in recording.expected.items()
        ],
    }


def build() -> str:
    rules = alerts()
    missing = sorted(set(rules) - set(CASES))
    extra = sorted(set(CASES) - set(rules))
    if missing or extra:
        raise SystemExit(f"cases missing for {missing}, cases without a rule: {extra}")
    tests = []
    for alertname, case in CASES.items():
        rule = rules[alertname]
        labels = {**case.labels, **rule["labels"]}
        annotations = {k: render(v, labels, case.value) for k, v in rule["annotations"].items()}
        tests.append(
            _test(alertname, case.fires, [{"exp_labels": labels, "exp_annotations": annotations}])
        )
        tests.append(_test(alertname, case.quiet, []))
    recorded: set[str] = set()
    for recording in RECORDINGS:
        tests.append(_recording_test(recording))
        recorded |= {name.split("{")[0] for name in recording.expected}
    unchecked = sorted(set(recording_rules()) - recorded)
    if unchecked:
        raise SystemExit(f"no two-collector case for the recording rules {unchecked}")
    document = {
        "rule_files": [f"../{name}" for name in RULE_FILES],
        "evaluation_interval": "1m",
        "tests": tests,
    }
    header = "# Generated by deploy/prometheus/make_tests.py: edit the cases there.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=1000)


def main() -> None:
    text = build()
    if sys.argv[1:] == ["--check"]:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            raise SystemExit(f"{OUTPUT} is out of date: run python {__file__}")
        return
    OUTPUT.write_text(text)


if __name__ == "__main__":
    main()
