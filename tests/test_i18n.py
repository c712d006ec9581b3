"""Vietnamese and English: complete catalogs, every risk reason in both languages from a real
collector, the language setting (--lang, [server] language, the locale), and /metrics that no
language changes."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
import unicodedata
import zipfile
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from dcguard.collector.risk.config import REASONS
from dcguard.common import i18n
from dcguard.v1 import collector_pb2 as pb
from tests.security_helpers import failures, ransomware_sign
from tests.storage_reports import (
    FAILING_HDS,
    GIB,
    Submitter,
    ata_disk,
    backup,
    fs,
    io_errors,
    raid,
    report,
)
from tests.support import Collector, run_cli, wait_for

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "agent/dcguard/common/locale/vi/LC_MESSAGES/dcguard.po"
COMPILED = CATALOG.with_suffix(".mo")
PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")
HOUR = 3600.0
VI = {"LANG": "vi_VN.UTF-8"}


def _code_messages() -> set[str]:
    """Every message the code marks (tr, trn, N_), as i18n/update.sh extracts them."""
    keywords = {"tr": None, "trn": (1, 2), "N_": None}
    found: set[str] = set()
    for top in ("agent", "collector"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / top, [("**.py", "python")], keywords=keywords
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _catalog():
    with CATALOG.open("rb") as f:
        return read_po(f)


def test_every_message_in_the_code_has_a_vietnamese_translation():
    """A sentence added without a translation (a new risk reason, a new error) fails here,
    naming it: run bash i18n/update.sh and translate what it added to the .po file."""
    catalog = _catalog()
    ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
    missing = _code_messages() - ids
    assert not missing, f"not in the catalog (run bash i18n/update.sh): {sorted(missing)}"
    problems = []
    for m in catalog:
        if not m.id:
            continue
        originals = m.id if isinstance(m.id, tuple) else (m.id,)
        translations = m.string if isinstance(m.string, tuple) else (m.string,)
        if m.fuzzy or not all(translations):
            problems.append(f"untranslated or fuzzy: {originals[0]!r}")
            continue
        expected = set(PLACEHOLDER.findall(originals[0]))
        for text in translations:
            if set(PLACEHOLDER.findall(text)) != expected:
                problems.append(f"placeholders differ: {originals[0]!r} → {text!r}")
            if unicodedata.normalize("NFC", text) != text:
                problems.append(f"not NFC: {text!r}")
    assert not problems, "\n".join(problems)


def test_placeholders_are_named_never_positional():
    """Translators reorder placeholders; "{}" or "{0}" cannot be reordered safely."""
    bad = [m for m in _code_messages() if re.search(r"\{\d*[}:!]", m) or "%s" in m]
    assert not bad, bad


def test_the_compiled_catalog_is_the_catalog():
    """The .mo the package loads is what the .po says (bash i18n/update.sh compiles it)."""
    compiled = io.BytesIO()
    write_mo(compiled, _catalog())
    assert COMPILED.read_bytes() == compiled.getvalue(), "run bash i18n/update.sh"


def test_a_built_wheel_ships_the_compiled_catalog(tmp_path):
    """`pip install` must install the catalog, or every installed collector speaks English."""
    # From a copy: setuptools builds in the source tree, which is not the test's to change.
    source = tmp_path / "source"
    for part in ("agent", "collector", "proto", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("dcguard-*.whl")
    assert "dcguard/common/locale/vi/LC_MESSAGES/dcguard.mo" in zipfile.ZipFile(wheel).namelist()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "vi_VN.UTF-8"}, "vi"),
        ({"LANG": "vi"}, "vi"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LC_ALL": "vi_VN.UTF-8", "LANG": "en_GB.UTF-8"}, "vi"),
        ({"LC_MESSAGES": "en_US.UTF-8", "LANG": "vi_VN.UTF-8"}, "en"),
        ({"LC_ALL": "", "LANG": "vi_VN.UTF-8"}, "vi"),
        ({"LANG": "C.UTF-8"}, None),
        ({"LANG": "fr_FR.UTF-8"}, None),
        ({}, None),
    ],
)
def test_the_locale_names_the_language(environ, expected):
    assert i18n.from_environment(environ) == expected


def test_durations_and_sizes_read_naturally_in_vietnamese():
    vi, en = i18n.language("vi"), i18n.language("en")
    assert vi.span(3 * 86400) == "3 ngày" and en.span(3 * 86400) == "3 days"
    assert vi.span(26 * HOUR) == "26 giờ" and en.span(26 * HOUR) == "26h"
    assert vi.span(25 * 60) == "25 phút" and vi.span(40) == "40 giây"
    assert vi.size(3.2 * GIB) == "3,2 GiB" and en.size(3.2 * GIB) == "3.2 GiB"


# ---------------------------------------------------------------------------------------
# One real collector whose state holds every risk reason.


def restore_failed(b, when: float):
    """b with a failed restore drill at when, and its copy on this server (no off-host copy)."""
    b.restore_test.success = False
    b.restore_test.time.FromNanoseconds(int(when * 1e9))
    b.restore_test.message = "restic: pack 3f2a: ciphertext verification failed"
    b.copy_location = "this_host"
    return b


def _every_reason(submitter, filler, silent) -> None:
    """Reports that raise every reason: one line per reason, so a new reason is one more."""
    now = time.time()
    submitter.send(
        report(
            collected_at=now,
            backups=[
                # backup_missing, backup_stale, backup_failed, backup_unverified, backup_same_device
                backup("never", last_run=now - HOUR, ok=False, message="repository locked"),
                backup("nightly", rpo=26 * HOUR, last_success=now - 3 * 86400),
                backup(
                    "weekly",
                    last_success=now - HOUR,
                    last_run=now - 600,
                    ok=False,
                    message="exit status 3",
                ),
                backup("checked", last_success=now - HOUR, verify_every=86400),
                backup("local", last_success=now - HOUR, same_device=True),
                # backup_unrestorable, and no_offsite_copy (the one copy whose place is known)
                restore_failed(backup("drilled", last_success=now - HOUR), now - 2 * HOUR),
            ],
            disks=[  # disk_smart_failing, disk_smart_degrading
                ata_disk(
                    "/dev/sdc",
                    "Hitachi HDS721050DLE630",
                    "MSK423Y20S3HBC",
                    FAILING_HDS,
                    healthy=False,
                ),
                ata_disk(
                    "/dev/sdd",
                    "WDC WD10EZEX",
                    "WD-1234",
                    ((197, "Current_Pending_Sector", 8, 100, 0, False),),
                ),
            ],
            raid_arrays=[raid("md0", active=1, failed=("sdb1",), action="recover", progress=0.42)],
            filesystems=[  # filesystem_readonly, filesystem_almost_full
                fs("/", avail=50 * GIB),
                fs("/srv", readonly=True, device="/dev/sdb1"),
                fs("/var", avail=2 * GIB, device="/dev/sda3"),
            ],
            io_errors=[io_errors("/dev/sde", 5, now - 60)],
            data_coverage=pb.DataCoverage(  # data_not_backed_up
                locations=[
                    pb.DataLocation(path="/srv/samba/ke-toan", kind="samba", owner="ke-toan")
                ]
            ),
            events=[ransomware_sign(now - 60, extension=".locked")],  # ransomware_suspected
        )
    )
    # Filling fast needs a trend: six hours of reports, /data losing 2 GiB an hour.
    filler.send(
        *[
            report(
                collected_at=now - 6 * HOUR + step * 300,
                filesystems=[fs("/data", avail=int((42 - 2 * step / 12) * GIB))],
            )
            for step in range(73)
        ]
    )
    silent.send(report(collected_at=now))  # agent_silent, 3 s later


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """A collector holding every reason; its config, and one that asks for Vietnamese."""
    workdir = tmp_path_factory.mktemp("i18n")
    collector = Collector(workdir / "collector")
    collector.start()
    senders = [
        Submitter(collector.grpc_address, "db01"),
        Submitter(collector.grpc_address, "db02"),
        Submitter(collector.grpc_address, "old01", interval=1.0),
    ]
    try:
        _every_reason(*senders)
        vi_config = workdir / "collector-vi.toml"
        vi_config.write_text(
            collector.config_path.read_text().replace(
                "[server]\n", '[server]\nlanguage = "vi"\n', 1
            )
        )
        en_config = workdir / "collector-en.toml"
        en_config.write_text(
            collector.config_path.read_text().replace(
                "[server]\n", '[server]\nlanguage = "en"\n', 1
            )
        )

        def silent() -> bool:
            return "agent_silent" in _json(collector.config_path, "--lang", "en").get("old01", {})

        wait_for(silent, timeout=15, interval=0.5, message="old01 to fall silent")
        yield collector, vi_config, en_config
    finally:
        for s in senders:
            s.close()
        collector.stop()


def _risk(config: Path, *args: str, env: dict[str, str] | None = None):
    result = run_cli("dcguard.collector", "risk", "--config", str(config), *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json(config: Path, *args: str) -> dict[str, dict[str, list[dict]]]:
    """host → reason → its statements."""
    hosts: dict[str, dict[str, list[dict]]] = {}
    for a in json.loads(_risk(config, "--json", *args)):
        for s in a["reasons"]:
            hosts.setdefault(a["host"], {}).setdefault(s["reason"], []).append(s)
    return hosts


def _english_left(text: str) -> list[str]:
    """Words of our English sentences that a Vietnamese sentence must not contain."""
    words = (" ago", " the ", " its ", " has ", " is ", " disk ", " backup ", " left")
    return [w for w in words if w in f" {text} "]


def test_every_risk_reason_reads_in_both_languages(state):
    collector, _, _ = state
    english = _json(collector.config_path, "--lang", "en")
    vietnamese = _json(collector.config_path, "--lang", "vi")
    shown = {reason for reasons in english.values() for reason in reasons}
    assert shown == set(REASONS), f"add a report line for {set(REASONS) - shown}"
    for host, reasons in english.items():
        for reason, statements in reasons.items():
            translated = vietnamese[host][reason]
            # Codes, subjects and weights are the same; only the sentence changes.
            assert [(s["subject"], s["weight"]) for s in statements] == [
                (s["subject"], s["weight"]) for s in translated
            ]
            for en, vi in zip(statements, translated):
                sentence = vi["message"]
                assert sentence != en["message"], f"{reason} is not translated: {sentence}"
                assert unicodedata.normalize("NFC", sentence) == sentence
                assert re.search(r"[ạ-ỹà-ý]", sentence), sentence  # Vietnamese letters
                assert not _english_left(sentence), (reason, sentence)
                # What the agent said (a job, a device, a tool's error) is kept as said.
                for kept in re.findall(r"'[^']+'|(?<!\w)/[\w/.-]+|md\d", en["message"]):
                    assert kept in sentence, (kept, sentence)


def test_the_vietnamese_sentences_say_what_an_operator_needs(state):
    collector, _, _ = state
    text = _risk(collector.config_path, "--lang", "vi")
    assert (
        "tác vụ sao lưu 'nightly': lần sao lưu thành công gần nhất cách đây 3 ngày; "
        "mục tiêu điểm khôi phục (RPO) là 26 giờ"
    ) in text
    assert (
        "mảng RAID md0 (raid1) bị suy giảm: 1 trên 2 ổ đĩa hoạt động; hỏng: sdb1; "
        "recover xong 42%" in text
    )
    assert (
        "hệ thống tệp /data (/dev/sda2) sẽ đầy sau khoảng 15 giờ theo tốc độ của 6 giờ "
        "vừa qua (còn trống 30,0 GiB, giảm 2,0 GiB/giờ)" in text
    )
    assert "db01 (so-tu-phap): rủi ro 100/100" in text
    assert text.rstrip().endswith("3 trên 3 máy chủ có rủi ro mất dữ liệu")
    # Reason codes are labels, not text: they stay as they are.
    assert "  backup_stale: " in text


def test_the_listing_commands_read_in_vietnamese(state):
    _, vi_config, _ = state
    agents = run_cli("dcguard.collector", "agents", "--config", str(vi_config))
    assert agents.returncode == 0, agents.stderr
    head, *rows = agents.stdout.splitlines()
    assert head.split()[:2] == ["MÁY", "CHỦ"] and "HOẠT ĐỘNG" in head and "RỦI RO" in head
    old01 = next(row for row in rows if row.startswith("old01"))
    assert " KHÔNG " in old01
    # Columns stay aligned although "HOẠT ĐỘNG" is wider than "UP".
    assert head.index("LIÊN LẠC CUỐI") == old01.index(old01.split()[3])
    # old01 has no events (db01 has the ransomware sign): the empty listing's words.
    events = run_cli("dcguard.collector", "events", "--host", "old01", "--config", str(vi_config))
    assert events.returncode == 0, events.stderr
    assert events.stdout.split("\n")[0].startswith("THỜI GIAN")
    assert "(không có sự kiện nào khớp)" in events.stdout
    backups = run_cli("dcguard.collector", "backups", "--config", str(vi_config))
    assert backups.returncode == 0, backups.stderr
    lines = backups.stdout.splitlines()
    assert lines[0] == "Không có bản sao ở máy chủ khác: 1 trên 3 máy chủ"
    # Location codes are label values: the same in both languages.
    assert "  db01 (so-tu-phap): drilled this_host" in lines
    assert "Chưa từng diễn tập khôi phục: 1 trên 3 máy chủ" in lines


def test_lang_then_config_then_locale_then_english(state):
    collector, vi_config, en_config = state
    stale_en = "'nightly' last succeeded 3 days ago"
    stale_vi = "'nightly': lần sao lưu thành công gần nhất cách đây 3 ngày"
    assert stale_vi in _risk(vi_config)  # [server] language
    assert stale_en in _risk(vi_config, "--lang", "en")  # --lang wins
    assert stale_vi in _risk(collector.config_path, env=VI)  # the locale
    assert stale_en in _risk(en_config, env=VI)  # config beats locale
    assert stale_en in _risk(collector.config_path)  # English otherwise
    result = run_cli(
        "dcguard.collector", "--lang", "vi", "risk", "--config", str(collector.config_path)
    )  # on the group too
    assert stale_vi in result.stdout, result.stderr


def test_switching_language_changes_no_metric_name_label_or_value(tmp_path):
    """Sentences never reach /metrics: two collectors, one per language, same reports."""
    scrapes = []
    for language in ("en", "vi"):
        collector = Collector(
            tmp_path / language,
            extra_config="",
            server_extra=f'insecure = true\nlanguage = "{language}"\n',
        )
        collector.start()
        senders = [Submitter(collector.grpc_address, host) for host in ("db01", "db02", "old01")]
        try:
            _every_reason(*senders)
            samples = collector.metrics()
            scrapes.append(
                {
                    (name, labels): value
                    for (name, labels), value in samples.items()
                    if dict(labels).get("host") and "timestamp" not in name
                }
            )
        finally:
            for s in senders:
                s.close()
            collector.stop()
    english, vietnamese = scrapes
    assert english.keys() == vietnamese.keys()
    risk = {k for k in english if k[0].startswith("dcguard_data_loss_risk")}
    assert risk and {k: english[k] for k in risk} == {k: vietnamese[k] for k in risk}


@pytest.mark.parametrize("value", ['"fr"', '"VI"', "1", "true", '["vi"]'])
def test_a_bad_language_in_the_config_is_one_line(tmp_path, value):
    config = tmp_path / "collector.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\nlanguage = {value}\n')
    result = run_cli("dcguard.collector", "risk", "--config", str(config))
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert "server.language: must be one of en, vi" in line


@pytest.mark.parametrize(
    "args",
    [
        ("dcguard.collector", "risk", "--lang", "fr"),
        ("dcguard.collector", "--lang", "", "agents"),
        ("dcguard.agent", "check-config", "--lang", "vn"),
    ],
)
def test_a_bad_lang_flag_is_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert "--lang" in line and "Traceback" not in result.stderr


def test_config_errors_are_vietnamese_and_name_the_key_as_written(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(
        '[agent]\ndepartment = "so-tu-phap"\ninterval = 15\nbogus_key = 1\n'
        '[collector]\naddresses = ["127.0.0.1:4740"]\n'
    )
    result = run_cli("dcguard.agent", "check-config", "--lang", "vi", "--config", str(config))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"dcguard-agent: tệp cấu hình {config}: agent.interval: phải là một chuỗi "
        f'thời lượng như "15s", nhưng nhận được int 15'
    )
    config.write_text(
        '[agent]\ndepartment = "so-tu-phap"\nbogus_key = 1\n'
        '[collector]\naddresses = ["127.0.0.1:4740"]\n'
    )
    result = run_cli("dcguard.agent", "check-config", "--config", str(config), env=VI)
    assert result.stderr.strip().endswith("agent.bogus_key: khóa không xác định"), result.stderr


def test_the_agents_own_parsers_and_commands_speak_vietnamese(tmp_path):
    """Errors raised deep in shared parsers (durations, sizes, names) and a command's own
    summary line follow --lang as well."""
    config = tmp_path / "agent.toml"
    base = (
        '[agent]\ndepartment = "so-tu-phap"\nstate_dir = "{state}"\n'
        '[collector]\naddresses = ["127.0.0.1:4740"]\ninsecure = true\n'
    )
    config.write_text(
        base.format(state=tmp_path / "state").replace(
            "[agent]\n", '[agent]\ninterval = "15 phút"\n'
        )
    )
    result = run_cli("dcguard.agent", "check-config", "--lang", "vi", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        'agent.interval: không phải thời lượng như "15s", "500ms" hoặc "26h": \'15 phút\''
    ), result.stderr
    config.write_text(base.format(state=tmp_path / "state"))
    result = run_cli("dcguard.agent", "check-config", "--lang", "vi", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert (
        f"{config}: hợp lệ; máy chủ " in result.stdout
        and ", đơn vị so-tu-phap, nguồn: " in result.stdout
    )


def test_a_vietnamese_collector_stores_and_shows_detections_in_vietnamese(tmp_path):
    """[server] language decides the words of a detection, stored once and forwarded as
    stored; its type, severity and technique stay codes."""
    collector = Collector(tmp_path / "c", server_extra='insecure = true\nlanguage = "vi"\n')
    collector.start()
    sender = Submitter(collector.grpc_address, "web01")
    try:
        sender.send(report(events=failures("203.0.113.5", time.time() - 60, 8, step=1)))
        result = collector.cli("events", "--json", "--min-severity", "high")
        assert result.returncode == 0, result.stderr
        (found,) = [e for e in json.loads(result.stdout) if e["detection"]]
        assert (found["type"], found["severity"], found["technique"]) == (
            "brute_force",
            "high",
            "T1110",
        )
        assert found["message"] == (
            "8 lần đăng nhập SSH thất bại từ 203.0.113.5 vào web01 trong 120 giây"
        )
    finally:
        sender.close()
        collector.stop()


def test_agent_status_reads_in_vietnamese_and_its_json_does_not_change(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndepartment = "so-tu-phap"\nstate_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
        'timeout = "1s"\n'
    )
    text = run_cli("dcguard.agent", "status", "--config", str(config), env=VI)
    assert text.returncode == 0, text.stderr
    assert "báo cáo trong hàng đợi     0" in text.stdout
    assert "máy chủ thu thập           127.0.0.1:1: " in text.stdout
    assert text.stdout.rstrip().endswith(": không kết nối được (UNAVAILABLE) (đang dùng)")
    as_json = run_cli("dcguard.agent", "status", "--json", "--config", str(config), env=VI)
    assert json.loads(as_json.stdout)["spool_reports"] == 0


def test_agent_collect_reads_in_vietnamese(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndepartment = "so-tu-phap"\nstate_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
        "[sources]\ndisable_defaults = true\nhost = true\n"
    )
    result = run_cli("dcguard.agent", "collect", "--lang", "vi", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^host +[\d,.]+ ms  tốt$", result.stdout, re.M), result.stdout
    assert re.search(
        r"^CPU \d+%  load1 [\d.]+  bộ nhớ còn trống [\d,]+ \w+ trên [\d,]+ \w+$",
        result.stdout,
        re.M,
    ), result.stdout
