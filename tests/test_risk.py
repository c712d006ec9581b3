"""The risk rules at their edges, the score, per-department/host overrides and [risk] garbage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.collector.config import load_config
from dcguard.collector.identity import PeerIdentity
from dcguard.collector.risk.config import REASONS, RiskConfig, parse_risk
from dcguard.collector.risk.engine import RiskEngine
from dcguard.collector.risk.history import FilesystemHistory, fit_trend
from dcguard.collector.store import AgentRecord, ReportStore, report_store
from dcguard.common.config import ConfigError, Table
from dcguard.v1 import collector_pb2 as pb
from tests.storage_reports import (
    FAILING_HDS,
    GIB,
    REALLOCATED_304,
    ata_disk,
    backup,
    fs,
    io_errors,
    nvme_disk,
    raid,
    record,
    report,
)
from tests.submit import agent_info

NOW = 1_800_000_000.0
HOUR = 3600.0


def engine(risk_toml: dict | None = None) -> RiskEngine:
    config = parse_risk(Table(risk_toml or {}, "risk")) if risk_toml is not None else RiskConfig()
    return RiskEngine(config, down_after_intervals=3)


def active(rec: AgentRecord, now: float = NOW, eng: RiskEngine | None = None) -> dict[str, str]:
    """reason → the sentences of its active findings, as of now."""
    out: dict[str, str] = {}
    for s in (eng or engine()).assess(rec, now).statements:
        out[s.reason] = (out.get(s.reason, "") + " | " + s.message).strip(" |")
    return out


def host(**parts: object) -> AgentRecord:
    return record(report(collected_at=NOW, **parts), last_seen=NOW)


# --- backups -------------------------------------------------------------------------------


def test_backup_stale_fires_only_once_its_age_is_over_the_objective():
    rec = host(backups=[backup("mysql-nightly", rpo=26 * HOUR, last_success=NOW - 26 * HOUR)])
    assert "backup_stale" not in active(rec, NOW)
    assert "backup_stale" not in active(rec, NOW - 1)
    later = active(rec, NOW + 3 * 86400 - 26 * HOUR)
    assert later["backup_stale"] == (
        "backup 'mysql-nightly' last succeeded 3 days ago; objective is 26h"
    )


def test_backup_without_an_objective_uses_the_configured_default_rpo():
    rec = host(backups=[backup("files", rpo=0, last_success=NOW - 25 * HOUR)])
    assert "backup_stale" not in active(rec)
    assert "backup_stale" in active(rec, eng=engine({"default_rpo": "24h"}))


def test_backup_missing_when_it_never_succeeded_and_not_otherwise():
    never = host(
        backups=[
            backup("pg-dump", last_run=NOW - HOUR, ok=False, message="pg_dump: connection refused")
        ]
    )
    reasons = active(never)
    assert reasons["backup_missing"] == (
        "backup 'pg-dump' has never succeeded; its last run "
        "failed: pg_dump: connection refused - run it now and "
        "check its schedule"
    )
    assert "backup_stale" not in reasons
    ok = host(backups=[backup("pg-dump", last_success=NOW - HOUR)])
    assert active(ok) == {}


def test_backup_failed_on_a_failed_run_an_unreadable_job_or_a_failed_check():
    failed = host(
        backups=[
            backup(
                "etc",
                last_success=NOW - 2 * HOUR,
                last_run=NOW - HOUR,
                ok=False,
                message="disk quota exceeded",
            )
        ]
    )
    assert active(failed)["backup_failed"] == (
        "backup 'etc' failed its last run 60 min ago: disk quota exceeded"
    )
    tool = host(backups=[backup("etc", last_success=NOW - HOUR, error="restic: not found")])
    assert active(tool)["backup_failed"] == "backup 'etc' could not be checked: restic: not found"
    check = host(
        backups=[
            backup(
                "etc",
                last_success=NOW - HOUR,
                verify_every=86400,
                last_verified=NOW - HOUR,
                verify_ok=False,
            )
        ]
    )
    assert "failed its last verification 60 min ago" in active(check)["backup_failed"]
    assert "backup_failed" not in active(host(backups=[backup("etc", last_success=NOW)]))


def test_agent_text_in_a_sentence_cannot_add_or_fake_lines():
    forged = "repository locked\ndb09 (x): risk 0/100\x1b[2J"
    sentence = active(host(backups=[backup("etc", last_success=NOW, error=forged)]))[
        "backup_failed"
    ]
    assert sentence == (
        "backup 'etc' could not be checked: repository locked db09 (x): risk 0/100 [2J"
    )
    long = active(host(backups=[backup("etc", last_success=NOW, error="x" * 5000)]))
    assert len(long["backup_failed"]) == 600


def test_backup_unverified_edges():
    daily = 86400.0
    unscheduled = host(backups=[backup("a", last_success=NOW)])
    assert "backup_unverified" not in active(unscheduled)
    never = host(backups=[backup("a", last_success=NOW, verify_every=daily)])
    assert active(never)["backup_unverified"] == (
        "backup 'a' has never been verified; a check is due every 24h"
    )
    # A long objective: at NOW + 3 days the job is not stale, which would stand instead.
    fresh = host(
        backups=[
            backup(
                "a", rpo=30 * daily, last_success=NOW, verify_every=daily, last_verified=NOW - daily
            )
        ]
    )
    assert "backup_unverified" not in active(fresh, NOW)
    assert active(fresh, NOW + 3 * daily)["backup_unverified"] == (
        "backup 'a' was last verified 4 days ago; a check is due every 24h"
    )


def test_backup_same_device_names_the_shared_disk():
    rec = host(backups=[backup("www", last_success=NOW, same_device=True)])
    assert active(rec)["backup_same_device"].startswith(
        "backup 'www' is stored on the same physical disk as its data (/dev/sda)"
    )
    assert active(host(backups=[backup("www", last_success=NOW)])) == {}


# --- disks, arrays, I/O errors -----------------------------------------------------------------


def test_smart_failing_disk_from_a_real_capture():
    rec = host(
        disks=[
            ata_disk(
                "/dev/sdc", "Hitachi HDS721050DLE630", "MSK423Y20S3HBC", FAILING_HDS, healthy=False
            )
        ]
    )
    reasons = active(rec)
    assert reasons["disk_smart_failing"] == (
        "disk /dev/sdc (Hitachi HDS721050DLE630, serial MSK423Y20S3HBC) fails its SMART health "
        "check; has SMART 5 Reallocated_Sector_Ct below its threshold now - copy its data off "
        "and replace it"
    )
    # Its 1975 reallocated sectors are not listed beside it: one disk, one finding.
    assert "disk_smart_degrading" not in reasons


def test_nvme_critical_warning_fails_and_media_errors_degrade():
    # smartctl-nvme-FAILING-critical-warning16: warning 16 = volatile memory backup failed.
    warn = active(host(disks=[nvme_disk("/dev/nvme0", warning=16, healthy=False)]))
    assert (
        "reports NVMe critical warning: volatile memory backup failed" in warn["disk_smart_failing"]
    )
    # smartctl-nvme-media-errors7-samsung970evo: passes, 7 media errors.
    media = active(host(disks=[nvme_disk("/dev/nvme0", media_errors=7)]))
    assert "7 NVMe media errors" in media["disk_smart_degrading"]
    assert "disk_smart_failing" not in media
    worn = active(host(disks=[nvme_disk("/dev/nvme0", used=100)]))
    assert "100% of its rated endurance used" in worn["disk_smart_degrading"]
    assert active(host(disks=[nvme_disk("/dev/nvme0", used=99)])) == {}


def test_smart_degrading_edges_and_a_host_accepting_a_known_count():
    disk = ata_disk("/dev/sda", "ST3500418AS", "5VM1", REALLOCATED_304)
    assert "304 reallocated sectors (SMART 5)" in active(host(disks=[disk]))["disk_smart_degrading"]
    assert active(host(disks=[ata_disk("/dev/sda", "WDC WD140EDFZ", "9M")])) == {}
    # A disk whose 304 sectors are known and stable: accepted on db01 only, until it rises.
    eng = engine({"host": {"db01": {"smart_raw_tolerated": 304}}})
    assert active(host(disks=[disk]), eng=eng) == {}
    risen = ata_disk(
        "/dev/sda", "ST3500418AS", "5VM1", ((5, "Reallocated_Sector_Ct", 305, 93, 36, False),)
    )
    assert "305 reallocated sectors" in active(host(disks=[risen]), eng=eng)["disk_smart_degrading"]
    other = record(report(collected_at=NOW, disks=[disk]), host="db02", last_seen=NOW)
    assert "disk_smart_degrading" in active(other, eng=eng)


def test_a_non_predictive_attribute_and_an_unreadable_disk_raise_nothing():
    hours = ata_disk("/dev/sda", "m", "s", ((9, "Power_On_Hours", 40000, 50, 0, False),))
    unreadable = ata_disk("/dev/sdb", "m", "s", healthy=False)
    unreadable.smart_available = False
    assert active(host(disks=[hours, unreadable])) == {}


def test_standby_disk_keeps_its_last_values_and_says_so():
    disk = ata_disk("/dev/sdb", "m", "s", REALLOCATED_304, standby=True)
    assert (
        "(values from before the disk went to standby)"
        in active(host(disks=[disk]))["disk_smart_degrading"]
    )


def test_raid_degraded_edges():
    sentence = active(
        host(raid_arrays=[raid(active=1, failed=("sdb1",), action="recovery", progress=0.42)])
    )["raid_degraded"]
    assert sentence == (
        "RAID array md0 (raid1) is degraded: 1 of 2 disks active; failed: sdb1; "
        "recovery 42% done - one more disk failure can lose the array; replace "
        "the failed disk"
    )
    assert active(host(raid_arrays=[raid(action="check", progress=0.5)])) == {}


def test_io_errors_are_recent_for_the_window_then_age_out():
    rec = host(io_errors=[io_errors("sdb", 12, NOW - 2 * HOUR), io_errors("sdc", 0, None)])
    assert active(rec)["disk_io_errors"] == (
        "the kernel logged 12 I/O errors on sdb, the last 2h ago: I/O error, dev sdb, sector "
        "1234 op 0x0:(READ) - check the disk and cabling"
    )
    assert "disk_io_errors" in active(rec, NOW + 22 * HOUR - 1)
    assert "disk_io_errors" not in active(rec, NOW + 22 * HOUR)
    assert "disk_io_errors" in active(rec, NOW + 30 * HOUR, engine({"io_errors_window": "7d"}))


# --- filesystems -------------------------------------------------------------------------------


def test_readonly_fires_for_a_writable_filesystem_only():
    rec = host(
        filesystems=[
            fs("/", readonly=True),
            fs("/snap/core/1", readonly=True, fstype="squashfs", avail=0),
            fs("/mnt/archive", readonly=True),
            fs("/srv"),
        ]
    )
    reasons = active(rec, eng=engine({"readonly_expected_mountpoints": ["/mnt/archive"]}))
    assert reasons == {
        "filesystem_readonly": (
            "filesystem / (/dev/sda2) is mounted read-only, so writes and backups to it fail - the "
            "kernel does this after disk or filesystem errors; check dmesg"
        )
    }


def test_almost_full_edge_is_strictly_below_the_ratio():
    at_edge = host(filesystems=[fs("/var", size=100 * GIB, avail=10 * GIB)])
    assert active(at_edge) == {}
    below = host(filesystems=[fs("/var", size=100 * GIB, avail=10 * GIB - 1)])
    assert active(below)["filesystem_almost_full"] == (
        "filesystem /var (/dev/sda2) has 10.0 GiB (10%) left of 100.0 GiB"
    )
    eng = engine({"department": {"so-tu-phap": {"almost_full_avail_ratio": 0.2}}})
    assert "filesystem_almost_full" in active(
        host(filesystems=[fs("/var", avail=15 * GIB)]), eng=eng
    )


def _history(
    tmp_path: Path, name: str = "c.db", **settings: str
) -> tuple[FilesystemHistory, ReportStore]:
    """The history as the collector hooks it: into a real store on a file of its own."""
    config = parse_risk(Table(dict(settings), "risk"))
    history = FilesystemHistory(config.history)
    store = report_store(tmp_path / name, hooks=[history])
    store.open()
    return history, store


def _store(store: ReportStore, *reports: pb.Report) -> None:
    """Store db01's reports in order, numbered on from its last one, as its agent would."""
    last = {r.host: r.max_sequence for r in store.agents()}.get("db01", 0)
    for sequence, r in enumerate(reports, last + 1):
        r.sequence = sequence
    store.apply(PeerIdentity("db01", "so-tu-phap"), agent_info(), reports, NOW)


def _fill(
    store: ReportStore, avail_by_minute: list[tuple[float, float]], mount: str = "/var"
) -> None:
    _store(
        store,
        *(
            report(collected_at=NOW + minute * 60, filesystems=[fs(mount, avail=int(avail))])
            for minute, avail in avail_by_minute
        ),
    )


def test_filling_fast_from_a_six_hour_trend(tmp_path):
    history, store = _history(tmp_path)
    # 30 GiB left, falling 1.5 GiB/h: full in 20 h, within the 24 h horizon.
    _fill(store, [(m, 30 * GIB + 1.5 * GIB * (360 - m) / 60) for m in range(0, 361, 5)])
    eng = RiskEngine(RiskConfig(), 3, history)
    rec = record(
        report(collected_at=NOW + 6 * HOUR, filesystems=[fs("/var", avail=30 * GIB)]),
        last_seen=NOW + 6 * HOUR,
    )
    assert active(rec, NOW + 6 * HOUR, eng)["filesystem_filling_fast"] == (
        "filesystem /var (/dev/sda2) will be full in about 20h at the rate of the last 6h "
        "(30.0 GiB left, falling 1.5 GiB/h)"
    )


def test_filling_fast_does_not_fire_past_the_horizon_or_on_short_or_roomy_history(tmp_path):
    history, store = _history(tmp_path)
    # Full in 25 h: past the 24 h horizon.
    _fill(store, [(m, 30 * GIB + 1.2 * GIB * (360 - m) / 60) for m in range(0, 361, 5)])
    rec = record(report(collected_at=NOW + 6 * HOUR, filesystems=[fs("/var", avail=30 * GIB)]))
    assert "filesystem_filling_fast" not in active(
        rec, NOW + 6 * HOUR, RiskEngine(RiskConfig(), 3, history)
    )
    # 45 minutes of steep fall: not enough history to predict (min span 1 h).
    short, store2 = _history(tmp_path, "short.db")
    _fill(store2, [(m, 30 * GIB - m * GIB / 2) for m in range(0, 46, 5)])
    assert short.trends("db01") == {}
    # Steep but with 50 % of the disk free: not predicted (max_avail_ratio 0.4).
    roomy, store3 = _history(tmp_path, "roomy.db")
    _fill(store3, [(m, 80 * GIB - m * GIB / 10) for m in range(0, 121, 5)])
    big = record(report(collected_at=NOW + 2 * HOUR, filesystems=[fs("/var", avail=50 * GIB)]))
    assert roomy.trends("db01")["/var"].seconds_to_full is not None
    assert "filesystem_filling_fast" not in active(
        big, NOW + 2 * HOUR, RiskEngine(RiskConfig(), 3, roomy)
    )


def test_history_is_downsampled_and_kept_only_for_the_window(tmp_path):
    history, store = _history(
        tmp_path, filling_fast_window="1h", history_sample_every="5m", filling_fast_min_span="10m"
    )
    # A report every 15 s for 3 hours: 720 reports.
    _fill(store, [(s / 4, 50 * GIB - s * 1000) for s in range(720)])
    db = sqlite3.connect(tmp_path / "c.db")
    rows = db.execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM fs_history").fetchone()
    # One sample per 5 minutes over window + one step: 14 or 15 rows, never 720.
    assert 12 <= rows[0] <= 15
    assert rows[2] - rows[1] <= 3600 + 300
    # Read-only filesystems (a host with many snaps) add no rows.
    _store(
        store,
        report(
            collected_at=NOW + 4 * HOUR,
            filesystems=[
                fs(f"/snap/core/{i}", fstype="squashfs", readonly=True, avail=0) for i in range(20)
            ],
        ),
    )
    assert db.execute(
        "SELECT COUNT(*) FROM fs_history WHERE mountpoint LIKE '/snap/%'"
    ).fetchone() == (0,)
    # A restarted collector rebuilds the same trend from the table.
    reloaded = FilesystemHistory(history.settings)
    reloaded.load(tmp_path / "c.db")
    assert reloaded.trends("db01")["/var"] == history.trends("db01")["/var"]


def test_fit_trend_needs_three_points_and_a_span():
    assert fit_trend([(0, 10), (60, 5)]) is None
    assert fit_trend([(5, 10), (5, 9), (5, 8)]) is None
    trend = fit_trend([(0, 100), (10, 90), (20, 80)])
    assert trend is not None and trend.seconds_to_full == pytest.approx(80)


# --- the agent and the score -------------------------------------------------------------------


def test_agent_silent_after_the_up_window_and_its_own_setting():
    rec = record(report(collected_at=NOW), last_seen=NOW, interval=15)
    assert "agent_silent" not in active(rec, NOW + 45)
    assert active(rec, NOW + 46)["agent_silent"].startswith(
        "no report from the agent for 46 s (it reports every 15 s)"
    )
    eng = engine({"host": {"db01": {"silent_after": "10m"}}})
    assert "agent_silent" not in active(rec, NOW + 600, eng)
    assert "agent_silent" in active(rec, NOW + 601, eng)


def test_score_is_the_capped_sum_of_distinct_reasons_and_weights_override():
    two_stale = host(
        backups=[
            backup("a", last_success=NOW - 30 * HOUR),
            backup("b", last_success=NOW - 30 * HOUR),
        ]
    )
    assessment = engine().assess(two_stale, NOW)
    assert assessment.score == 40  # one reason, however many jobs
    assert len(assessment.statements) == 2
    dept = engine(
        {
            "weights": {"backup_stale": 10},
            "department": {"so-tu-phap": {"weights": {"backup_stale": 25}}},
            "host": {"db09": {"weights": {"backup_stale": 0}}},
        }
    )
    assert dept.assess(two_stale, NOW).score == 25
    elsewhere = record(two_stale.latest, department="other", last_seen=NOW)
    assert dept.assess(elsewhere, NOW).score == 10
    switched_off = dept.assess(record(two_stale.latest, host="db09", last_seen=NOW), NOW)
    assert (switched_off.score, switched_off.statements) == (0, ())
    everything = host(
        backups=[backup("a", same_device=True)],
        disks=[ata_disk("/dev/sdc", "m", "s", FAILING_HDS, healthy=False)],
        raid_arrays=[raid(active=1)],
    )
    capped = engine().assess(everything, NOW)
    assert capped.score == 100
    # Worst reason first.
    assert capped.statements[0].reason == "disk_smart_failing"


def test_a_backup_turns_stale_as_time_passes_without_a_new_report():
    from dcguard.collector.exposition.families.risk import RiskGroup

    # An agent reporting every 30 min: still up 1 h after its last report.
    rec = record(
        report(collected_at=NOW, backups=[backup("db", rpo=HOUR, last_success=NOW)]),
        last_seen=NOW,
        interval=1800,
    )
    group = RiskGroup(engine())
    group.render(rec, lambda *_: None)

    def scrape(now: float) -> dict[tuple[str, tuple], float]:
        samples: dict[tuple[str, tuple], float] = {}
        group.render_live(rec, now, lambda n, ls, v: samples.__setitem__((n, tuple(ls)), v))
        return samples

    stale = ("dcguard_data_loss_risk", (("reason", "backup_stale"),))
    assert scrape(NOW + HOUR)[stale] == 0
    later = scrape(NOW + HOUR + 1)
    assert later[stale] == 1
    assert later[("dcguard_data_loss_risk_score", ())] == 40
    assert later[("dcguard_data_loss_risk", (("reason", "agent_silent"),))] == 0


# --- one subject, one finding -------------------------------------------------------------------


def _scraped_reasons(rec: AgentRecord, now: float, eng: RiskEngine) -> tuple[set[str], float]:
    """The reasons at 1 and the score, as /metrics renders them (report-time + scrape-time)."""
    from dcguard.collector.exposition.families.risk import RiskGroup

    samples: dict[tuple[str, tuple], float] = {}

    def add(name: str, labels: tuple, value: float) -> None:
        samples[(name, tuple(labels))] = value

    group = RiskGroup(eng)
    group.render(rec, add)
    group.render_live(rec, now, add)
    on = {
        dict(labels)["reason"]
        for (name, labels), v in samples.items()
        if name == "dcguard_data_loss_risk" and v == 1
    }
    return on, samples[("dcguard_data_loss_risk_score", ())]


def test_a_failing_disk_is_listed_once_from_the_recorded_capture():
    """The recorded failing Hitachi fails its health check AND has reallocated sectors:
    "replace it now" stands alone, not beside "plan a replacement" (score 60, not 90)."""
    from dcguard.agent.sources.storage.smartctl import disk_from_json, exit_status, parse_json
    from tests.storage_helpers import FIXTURES

    data = parse_json(
        (FIXTURES / "smartctl-sata-hdd-FAILING-hds721050dle630-usbjmicron-v7.1.json").read_text()
    )
    disk = disk_from_json("/dev/sdc", data, exit_status(data), (5, 187, 188, 197, 198))
    assert not disk.healthy and {a.id: a.raw for a in disk.attributes}[5] == 1975
    rec = host(disks=[disk])
    eng = engine()
    assessment = eng.assess(rec, NOW)
    assert [(s.reason, s.subject) for s in assessment.statements] == [
        ("disk_smart_failing", "/dev/sdc")
    ]
    assert assessment.score == 60
    assert "replace it" in assessment.statements[0].message
    assert _scraped_reasons(rec, NOW, eng) == ({"disk_smart_failing"}, 60)


def test_for_one_subject_the_heaviest_active_finding_stands_as_time_passes():
    """A job on its data's disk that turns stale: same_device (30) until stale (40)."""
    # An agent reporting every 30 min: still up 1 h after its last report.
    rec = record(
        report(
            collected_at=NOW,
            backups=[
                backup("db", rpo=HOUR, last_success=NOW, same_device=True),
                backup("www", last_success=NOW, same_device=True),
            ],
        ),
        last_seen=NOW,
        interval=1800,
    )
    eng = engine()
    before = eng.assess(rec, NOW + HOUR)
    assert [(s.reason, s.subject) for s in before.statements] == [
        ("backup_same_device", "backup 'db'"),
        ("backup_same_device", "backup 'www'"),
    ]
    assert before.score == 30
    after = eng.assess(rec, NOW + HOUR + 1)
    assert [(s.reason, s.subject) for s in after.statements] == [
        ("backup_stale", "backup 'db'"),
        ("backup_same_device", "backup 'www'"),
    ]
    assert after.score == 70  # www's same-device finding still stands: another subject
    assert _scraped_reasons(rec, NOW + HOUR, eng) == ({"backup_same_device"}, 30)
    assert _scraped_reasons(rec, NOW + HOUR + 1, eng) == (
        {"backup_stale", "backup_same_device"},
        70,
    )
    # Severity is the weight in force for the host: weigh same_device above stale and it
    # stands for db even once the job is stale.
    heavy = engine({"weights": {"backup_same_device": 45}})
    assert [s.reason for s in heavy.assess(rec, NOW + HOUR + 1).statements] == [
        "backup_same_device",
        "backup_same_device",
    ]
    assert _scraped_reasons(rec, NOW + HOUR + 1, heavy) == ({"backup_same_device"}, 45)


# --- config garbage ----------------------------------------------------------------------------

GARBAGE = [
    ("silent_after = 5", "risk.silent_after: must be a duration string"),
    ('silent_after = "soon"', "risk.silent_after: not a duration"),
    ('default_rpo = "0"', "risk.default_rpo: must be at least 1s"),
    ("almost_full_avail_ratio = 1.5", "risk.almost_full_avail_ratio: must be between 0 and 1"),
    ('almost_full_avail_ratio = "10%"', "risk.almost_full_avail_ratio: must be a number"),
    ('filling_fast_horizon = "-1h"', "risk.filling_fast_horizon: not a duration"),
    ('filling_fast_window = "5m"', "risk.filling_fast_window: must be at least 600s"),
    ('filling_fast_min_span = "7h"', "risk.filling_fast_min_span: must not be longer than"),
    ('history_sample_every = "3h"', "risk.history_sample_every: must leave room for 3 samples"),
    ("filling_fast_max_avail_ratio = -0.1", "risk.filling_fast_max_avail_ratio: must be between"),
    ("smart_attributes = [5, 300]", "risk.smart_attributes: must be a list of integers 1-255"),
    ('smart_attributes = "5"', "risk.smart_attributes: must be a list of integers"),
    ("smart_raw_tolerated = -1", "risk.smart_raw_tolerated: must be at least 0"),
    ("nvme_percentage_used_limit = 0", "risk.nvme_percentage_used_limit: must be at least 1"),
    ('io_errors_window = "0"', "risk.io_errors_window: must be at least 1s"),
    ("readonly_expected_fstypes = [1]", "risk.readonly_expected_fstypes: must be a list of str"),
    ('readonly_expected_mountpoints = "/mnt"', "risk.readonly_expected_mountpoints: must be a"),
    ("ignore_mountpoints = [true]", "risk.ignore_mountpoints: must be a list of strings"),
    ("colour = 1", "risk.colour: unknown key"),
    ("[risk.weights]\nbackup_stale = 101", "risk.weights.backup_stale: must be at most 100"),
    ("[risk.weights]\nbackup_stale = -1", "risk.weights.backup_stale: must be at least 0"),
    ('[risk.weights]\nbackup_stale = "high"', "risk.weights.backup_stale: must be an integer"),
    ("[risk.weights]\nbackup_old = 5", "risk.weights.backup_old: unknown key"),
    (
        '[risk.department."so tu phap"]\nsilent_after = "1h"',
        "risk.department.so tu phap: not a valid department name",
    ),
    ("[risk.department.x]\nsilent_after = 1", "risk.department.x.silent_after: must be a duration"),
    (
        "[risk.host.db01]\nsmart_raw_tolerated = 1.5",
        "risk.host.db01.smart_raw_tolerated: must be an integer",
    ),
    (
        '[risk.host.db01]\nfilling_fast_window = "6h"',
        "risk.host.db01.filling_fast_window: unknown key",
    ),
    (
        "[risk.host.db01.weights]\nraid_degraded = true",
        "risk.host.db01.weights.raid_degraded: must be an integer",
    ),
    ("[risk]\nhost = 3", "risk.host: must be a table"),
    ("[risk.host]\ndb01 = 3", "risk.host.db01: must be a table"),
]


@pytest.mark.parametrize(("toml", "message"), GARBAGE)
def test_risk_config_garbage_is_one_line_naming_the_key(tmp_path, toml, message):
    path = tmp_path / "collector.toml"
    body = toml if toml.startswith("[") else f"[risk]\n{toml}"
    path.write_text(f'[server]\ndata_dir = "{tmp_path}"\n{body}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_a_full_risk_config_loads_with_overrides(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text(f'''
[server]
data_dir = "{tmp_path}"
[risk]
default_rpo = "26h"
almost_full_avail_ratio = 0.05
smart_attributes = [5, 197]
[risk.weights]
backup_same_device = 45
[risk.department.so-tu-phap]
io_errors_window = "7d"
[risk.host.db01]
ignore_mountpoints = ["/tmp"]
[risk.host.db01.weights]
filesystem_almost_full = 0
''')
    risk = load_config(path).risk
    th = risk.for_host("db01", "so-tu-phap")
    assert th.almost_full_avail_ratio == 0.05
    assert th.smart_attributes == (5, 197)
    assert th.io_errors_window_seconds == 7 * 86400
    assert th.ignore_mountpoints == ("/tmp",)
    assert th.weights["backup_same_device"] == 45
    assert th.weights["filesystem_almost_full"] == 0
    other = risk.for_host("web01", "other")
    assert other.io_errors_window_seconds == 86400
    assert other.weights["filesystem_almost_full"] == 20


def test_every_reason_is_exported_exactly_once_per_host_split_between_report_and_scrape(tmp_path):
    from dcguard.collector.config import load_config
    from dcguard.collector.exposition.families.registry import HostRenderer, default_groups
    from dcguard.collector.exposition.text import render_families
    from tests.support import parse_metrics

    path = tmp_path / "collector.toml"
    path.write_text('[server]\ngrpc_listen = "127.0.0.1:0"\ninsecure = true\n')
    config = load_config(path)
    renderer = HostRenderer(default_groups(config))
    rec = host(
        backups=[
            backup("a", last_success=NOW - 30 * HOUR, same_device=True),
            backup("b", last_success=NOW, same_device=True),
        ],
        io_errors=[io_errors("sdb", 3, NOW - HOUR), io_errors("sdc", 1, None)],
        disks=[ata_disk("/dev/sda", "m", "s", REALLOCATED_304)],
    )
    text = render_families(
        renderer.families, [renderer.render_live(rec, NOW + 1), renderer.render(rec)]
    )
    lines = [line for line in text.splitlines() if line.startswith("dcguard_data_loss_risk{")]
    reasons = [line.split('reason="')[1].split('"')[0] for line in lines]
    assert sorted(reasons) == sorted(REASONS)
    samples = parse_metrics(text)
    on = {
        dict(labels)["reason"]
        for (name, labels), v in samples.items()
        if name == "dcguard_data_loss_risk" and v == 1
    }
    assert on == {"backup_stale", "backup_same_device", "disk_io_errors", "disk_smart_degrading"}


# --- any report the validator lets through ----------------------------------------------------

_u64 = st.integers(min_value=0, max_value=2**64 - 1)
_u32 = st.integers(min_value=0, max_value=2**32 - 1)
_when = st.one_of(st.none(), st.floats(min_value=1.0, max_value=NOW + 3600))
_dur = st.floats(min_value=0, max_value=1e12)
_text = st.text(max_size=30)


@st.composite
def _any_report(draw: st.DrawFn):
    def stamp_or_none(field, when):
        if when is not None:
            field.FromNanoseconds(int(when * 1e9))

    r = report(collected_at=NOW)
    for i in range(draw(st.integers(0, 3))):
        d = r.disks.add(
            device=f"/dev/sd{i}",
            model=draw(_text),
            serial=draw(_text),
            protocol=draw(st.sampled_from(["ATA", "NVMe", ""])),
            smart_available=draw(st.booleans()),
            healthy=draw(st.booleans()),
            in_standby=draw(st.booleans()),
            temperature_celsius=draw(st.floats(0, 200)),
            nvme_critical_warning=draw(_u32),
            nvme_media_errors=draw(_u64),
            nvme_percentage_used=draw(_u32),
        )
        for attr in draw(st.sets(st.integers(1, 255), max_size=5)):
            d.attributes.add(
                id=attr,
                raw=draw(st.integers(-(2**63), 2**63 - 1)),
                failing_now=draw(st.booleans()),
                name=draw(_text),
            )
    for i in range(draw(st.integers(0, 2))):
        r.raid_arrays.add(
            name=f"md{i}",
            disks_active=draw(_u32),
            disks_total=draw(_u32),
            disks_failed=draw(_u32),
            degraded=draw(st.booleans()),
            sync_action=draw(st.sampled_from(["", "recovery", "check"])),
            sync_progress_ratio=draw(st.floats(0, 1)),
            failed_members=draw(st.lists(_text, max_size=2)),
        )
    for i in range(draw(st.integers(0, 2))):
        e = r.io_errors.add(device=f"sd{i}", errors_total=draw(_u64), last_message=draw(_text))
        stamp_or_none(e.last_error_at, draw(_when))
    for i in range(draw(st.integers(0, 3))):
        b = r.backups.add(
            job=f"job{i}",
            rpo_seconds=draw(_dur),
            verify_every_seconds=draw(_dur),
            last_run_success=draw(st.booleans()),
            last_verify_success=draw(st.booleans()),
            error=draw(_text),
            message=draw(_text),
            same_device=draw(st.booleans()),
            shared_disks=draw(st.lists(_text, max_size=2)),
        )
        for field in (b.last_success, b.last_run, b.last_verified):
            stamp_or_none(field, draw(_when))
    for i in range(draw(st.integers(0, 3))):
        r.filesystems.add(
            mountpoint=f"/m{i}",
            size_bytes=draw(_u64),
            avail_bytes=draw(_u64),
            readonly=draw(st.booleans()),
            fstype=draw(st.sampled_from(["ext4", "squashfs", "xfs"])),
            error=draw(st.sampled_from(["", "timeout"])),
        )
    return r


@settings(max_examples=150, deadline=None)
@given(_any_report(), st.floats(min_value=NOW - 86400, max_value=NOW + 400 * 86400))
def test_any_valid_report_gets_a_bounded_score_and_one_line_sentences(rep, now):
    from dcguard.collector.receive.validate_storage import validate_storage

    validate_storage(rep)
    eng, rec = engine(), record(rep, last_seen=NOW)
    assessment = eng.assess(rec, now)
    assert 0 <= assessment.score <= 100
    assert (assessment.score == 0) == (not assessment.statements)
    # One subject, one finding; /metrics' split between report and scrape time agrees.
    subjects = [s.subject for s in assessment.statements]
    assert len(subjects) == len(set(subjects))
    prepared = eng.prepare(rec)
    assert set(assessment.reasons) == prepared.active_reasons(now)
    assert prepared.always <= prepared.active_reasons(now)
    for s in assessment.statements:
        assert s.reason in REASONS
        assert s.message and s.message.isprintable() and len(s.message) <= 600
        assert s.subject.isprintable()
