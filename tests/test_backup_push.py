"""push backup jobs: `dcguard-agent backup-report` records runs the running agent reports."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dcguard.agent.sources.storage.push import read_record, record_run
from tests.storage_helpers import backup_source, collect
from tests.support import run_cli

# -- push --------------------------------------------------------------------------------


def agent_config(tmp_path: Path, jobs: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\ndepartment = "test"\nstate_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n' + jobs
    )
    return path


PUSH_JOB = '[[backup]]\nname = "pg"\nkind = "push"\nrpo = "26h"\nmin_size = "1K"\n'


def test_backup_report_while_the_source_runs_and_after_restart(tmp_path: Path) -> None:
    config = agent_config(
        tmp_path,
        PUSH_JOB + f'[[backup]]\nname = "f"\nkind = "files"\nrpo = "1d"\npath = "{tmp_path}"\n',
    )
    source = backup_source(tmp_path, {"name": "pg", "kind": "push", "min_size": "1K"})
    try:
        [before] = [b for b in collect(source).backups if b.job == "pg"]
        assert not before.HasField("last_run") and before.message == "no run recorded yet"
        done = run_cli(
            "dcguard.agent",
            "backup-report",
            "--config",
            str(config),
            "--job",
            "pg",
            "--status",
            "success",
            "--bytes",
            "5000",
            "--message",
            "nightly ok",
        )
        assert done.returncode == 0, done.stderr
        [after] = [b for b in collect(source).backups if b.job == "pg"]
    finally:
        source.close()
    assert after.last_run_success and after.size_bytes == 5000 and after.message == "nightly ok"
    assert after.last_success == after.last_run
    small = run_cli(
        "dcguard.agent",
        "backup-report",
        "--config",
        str(config),
        "--job",
        "pg",
        "--status",
        "success",
        "--bytes",
        "10",
    )
    assert small.returncode == 0 and "below min_size" in small.stdout
    restarted = backup_source(tmp_path, {"name": "pg", "kind": "push", "min_size": "1K"})
    [again] = [b for b in collect(restarted).backups if b.job == "pg"]
    restarted.close()
    assert not again.last_run_success and again.size_bytes == 10
    assert again.last_success == after.last_success  # the earlier success is kept


def test_concurrent_reports_leave_a_whole_record(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def report(index: int) -> None:
        record_run(state, "pg", index % 2 == 0, index, f"run {index}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(report, range(64)))
    record = read_record(state, "pg")
    assert record is not None and record.message == f"run {record.size_bytes}"
    assert record.last_success is not None and record.last_success_bytes is not None
    assert record.last_success_bytes % 2 == 0


def test_damaged_push_record_is_a_status(tmp_path: Path) -> None:
    (tmp_path / "state" / "backup-runs").mkdir(parents=True)
    (tmp_path / "state" / "backup-runs" / "pg.json").write_text('{"last_run": "soon"')
    source = backup_source(tmp_path, {"name": "pg", "kind": "push"})
    [backup] = collect(source).backups
    source.close()
    assert "cannot read the recorded run" in backup.error


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--job", "nope", "--status", "success"], "no [[backup]] job named 'nope'"),
        (["--job", "f", "--status", "success"], "only push jobs"),
        (["--job", "pg", "--status", "ok"], "'ok' is not one of"),
        (["--job", "pg", "--status", "success", "--bytes", "-1"], "--bytes"),
        (["--job", "pg", "--status", "success", "--bytes", "lots"], "--bytes"),
        (["--status", "success"], "--job"),
    ],
)
def test_backup_report_flag_garbage(tmp_path: Path, args: list[str], needle: str) -> None:
    config = agent_config(
        tmp_path,
        PUSH_JOB + f'[[backup]]\nname = "f"\nkind = "files"\nrpo = "1d"\npath = "{tmp_path}"\n',
    )
    result = run_cli("dcguard.agent", "backup-report", "--config", str(config), *args)
    assert result.returncode == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
