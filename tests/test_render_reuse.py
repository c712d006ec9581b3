"""Reusing a host's previous fragments gives exactly what a fresh render gives.

HostRenderer.render_host reuses a group's previous part when the group's key
is unchanged; these tests hold it to the same text as rendering from scratch,
whatever changed between two reports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import pytest

from bench.realistic import report as realistic_report
from dcguard.collector.config import load_config
from dcguard.collector.exposition.families.registry import HostRenderer, default_groups
from dcguard.collector.store import AgentRecord
from dcguard.v1 import collector_pb2 as pb

NOW = 1_800_000_000.0


@pytest.fixture
def renderer(tmp_path: Path) -> HostRenderer:
    path = tmp_path / "collector.toml"
    path.write_text(
        f'[server]\ngrpc_listen = "127.0.0.1:0"\ninsecure = true\n'
        f'data_dir = "{tmp_path / "data"}"\n'
    )
    return HostRenderer(default_groups(load_config(path)))


def record(report: pb.Report, department: str = "dept01") -> AgentRecord:
    return AgentRecord(
        "srv00001",
        department,
        "0.1.0",
        "Debian 12",
        "6.1.0",
        15.0,
        "i",
        NOW,
        NOW,
        report.sequence,
        report.sequence,
        0,
        report,
    )


def _free_space(r: pb.Report) -> None:
    r.filesystems[0].avail_bytes -= 4096


def _smart(r: pb.Report) -> None:
    r.disks[1].attributes[0].raw = 8


def _backup(r: pb.Report) -> None:
    r.backups[2].last_run_success = False


def _array(r: pb.Report) -> None:
    r.raid_arrays.add(name="md0", disks_active=1, disks_total=2, degraded=True)


@pytest.mark.parametrize("change", [_free_space, _smart, _backup, _array])
def test_reused_parts_render_as_a_fresh_render(
    renderer: HostRenderer, change: Callable[[pb.Report], None]
) -> None:
    first = realistic_report(1, now=NOW, events=0)
    second = pb.Report()
    second.CopyFrom(first)
    second.sequence = 2
    change(second)
    previous = renderer.render_host(record(first))
    reused = renderer.render_host(record(second), previous)
    assert reused.fragments == renderer.render(record(second))


def test_unchanged_disks_backups_and_risk_are_not_rendered_again(renderer: HostRenderer) -> None:
    first = realistic_report(1, now=NOW, events=0)
    second = pb.Report()
    second.CopyFrom(first)
    _free_space(second)
    previous = renderer.render_host(record(first))
    again = renderer.render_host(record(second), previous)
    reused = [a is b for a, b in zip(previous.parts, again.parts)]
    names = [type(group).__name__ for group in renderer.groups]
    assert dict(zip(names, reused)) == {
        "AgentGroup": False,
        "HostGroup": False,
        "FilesystemGroup": False,
        "StorageGroup": True,
        "BackupGroup": True,
        "CoverageGroup": True,
        "RiskGroup": True,  # 4 KiB less free space changes no risk reason
        "SecurityGroup": True,
    }


def test_a_new_department_renders_every_label_again(renderer: HostRenderer) -> None:
    report = realistic_report(1, now=NOW, events=0)
    previous = renderer.render_host(record(report))
    moved = dataclasses.replace(record(report), department="dept02")
    again = renderer.render_host(moved, previous)
    assert again.fragments == renderer.render(moved)
    assert 'department="dept01"' not in "".join(again.fragments.values())
