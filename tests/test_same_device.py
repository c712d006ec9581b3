"""Same physical device: paths resolved through partitions, LVM/dm and md to their disks.

Unit tests run on recorded /sys layouts (tests/fixtures/SYS-LAYOUTS.md); the
end-to-end tests use this machine's real /sys with real tmpfs and loop-device
mounts (the tests run as root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dcguard.agent.sources.backup import BackupSource
from dcguard.agent.sources.storage.blockdev import (
    disks_of_device,
    is_remote_repository,
    locate,
    shared_disks,
)
from dcguard.v1 import collector_pb2 as pb
from tests.mounts import loop_ext4, tmpfs
from tests.storage_helpers import FIXTURES, collect, make_source

LVM_ON_MD = FIXTURES / "sys-lvm-on-md"
NVME = FIXTURES / "sys-nvme-partitions"
MOUNTS = Path("/proc/self/mounts")


@pytest.mark.parametrize(
    ("number", "disks"),
    [
        ("253:0", {"sda", "sdb"}),  # vg0-root on md1 on sda2 + sdb2
        ("253:1", {"sda", "sdb"}),  # vg0-backup: the same two disks
        ("9:0", {"sda", "sdb"}),  # md0 on sda1 + sdb1
        ("8:2", {"sda"}),  # a partition resolves to its disk
        ("8:33", {"sdc"}),
        ("8:32", {"sdc"}),
        ("1:3", set()),  # not a block device (e.g. tmpfs): no disk
    ],
)
def test_lvm_on_md_layout(number: str, disks: set[str]) -> None:
    major, minor = (int(x) for x in number.split(":"))
    assert disks_of_device(LVM_ON_MD, major, minor) == disks


@pytest.mark.parametrize(
    ("number", "disks"),
    [
        ("259:0", {"nvme0n1"}),
        ("259:1", {"nvme0n1"}),  # nvme0n1p1
        ("253:0", {"nvme0n1"}),  # LUKS on nvme0n1p2
        ("259:4", {"nvme1n1"}),
    ],
)
def test_nvme_partition_layout(number: str, disks: set[str]) -> None:
    major, minor = (int(x) for x in number.split(":"))
    assert disks_of_device(NVME, major, minor) == disks


@pytest.mark.parametrize(
    ("kind", "repository", "remote"),
    [
        ("restic", "sftp:backup@nas:/srv/restic", True),
        ("restic", "s3:s3.amazonaws.com/bucket", True),
        ("restic", "rest:https://user:pw@host:8000/", True),
        ("restic", "b2:bucket:path", True),
        ("restic", "/srv/restic", False),
        ("restic", "local:/srv/restic", False),
        ("borg", "ssh://backup@nas:22/./repo", True),
        ("borg", "backup@nas:repo", True),
        ("borg", "nas:/srv/borg", True),
        ("borg", "/srv/borg", False),
        ("borg", "file:///srv/borg", False),
        ("borg", "./relative/repo", False),
    ],
)
def test_remote_repositories(kind: str, repository: str, remote: bool) -> None:
    assert is_remote_repository(kind, repository) is remote


def fake_sys(tmp_path: Path, layout: Path, mapping: dict[tuple[int, int], str]) -> Path:
    """A copy of a recorded layout where real MAJ:MIN numbers point at its devices."""
    root = tmp_path / "sys"
    shutil.copytree(layout, root, symlinks=True)
    for (major, minor), number in mapping.items():
        link = root / "dev" / "block" / f"{major}:{minor}"
        if link.is_symlink():
            link.unlink()
        link.symlink_to((root / "dev" / "block" / number).readlink())
    return root


def dev_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return os.major(st.st_dev), os.minor(st.st_dev)


def test_real_paths_through_a_recorded_lvm_on_md_stack(tmp_path: Path) -> None:
    """Data on vg0-root, backup on vg0-backup: different filesystems, the same two disks."""
    data = tmp_path / "data"
    data.mkdir()
    with (
        loop_ext4(tmp_path / "a.img", tmp_path / "lv-backup") as (lv_backup, maj, mnr),
        loop_ext4(tmp_path / "b.img", tmp_path / "other-disk") as (other, maj2, mnr2),
    ):
        sys_root = fake_sys(
            tmp_path, LVM_ON_MD, {dev_of(data): "253:0", (maj, mnr): "253:1", (maj2, mnr2): "8:33"}
        )
        source = locate(str(data), sys_root, MOUNTS)
        assert source.disks == {"sda", "sdb"}
        on_lv = locate(str(lv_backup / "restic"), sys_root, MOUNTS)  # not created yet
        assert shared_disks(source, on_lv) == ["sda", "sdb"]
        assert shared_disks(source, locate(str(other), sys_root, MOUNTS)) == []


def files_job_source(
    tmp_path: Path, source: Path, backup: Path, mounts_file: Path = MOUNTS
) -> BackupSource:
    config = {
        "storage": {"mounts_file": str(mounts_file)},
        "backup": [
            {
                "name": "dump",
                "kind": "files",
                "rpo": "1d",
                "path": str(backup),
                "source": str(source),
            }
        ],
    }
    made = make_source("backup", config, tmp_path / "state")
    assert isinstance(made, BackupSource)
    return made


def report_of(source: BackupSource) -> pb.Backup:
    try:
        collect(source)
        assert source.wait_rounds(1, timeout=30)
        [backup] = collect(source).backups
        return backup
    finally:
        source.close()


def test_backup_on_the_same_filesystem_is_flagged(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "db.sql").write_text("dump")
    backup = report_of(files_job_source(tmp_path, tmp_path / "data", tmp_path / "backup"))
    assert backup.same_device and backup.source_configured
    # Real /sys on this machine: the root filesystem's disk is named.
    real_disks = disks_of_device(Path("/sys"), *dev_of(tmp_path))
    if real_disks:
        assert list(backup.shared_disks) == sorted(real_disks)
    else:  # an overlay or btrfs root: the filesystem itself is named
        assert len(backup.shared_disks) == 1


def test_backup_on_a_tmpfs_is_not_on_the_source_disk(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with tmpfs(tmp_path / "ram") as ram:
        (ram / "db.sql").write_text("dump")
        backup = report_of(files_job_source(tmp_path, tmp_path / "data", ram))
    assert not backup.same_device and list(backup.shared_disks) == []


def test_backup_on_another_disk_is_not_flagged_and_same_disk_is(tmp_path: Path) -> None:
    with loop_ext4(tmp_path / "disk.img", tmp_path / "disk") as (disk, major, minor):
        (disk / "data").mkdir()
        (disk / "backup").mkdir()
        (disk / "backup" / "x.tar").write_text("x")
        (tmp_path / "local-backup").mkdir()
        (tmp_path / "local-backup" / "x.tar").write_text("x")
        other = report_of(
            files_job_source(tmp_path / "1", disk / "data", tmp_path / "local-backup")
        )
        same = report_of(files_job_source(tmp_path / "2", disk / "data", disk / "backup"))
    assert not other.same_device
    assert same.same_device
    loop_name = Path(os.path.realpath(f"/sys/dev/block/{major}:{minor}")).name
    assert list(same.shared_disks) == [loop_name]


def test_network_filesystem_is_off_device(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "nfs").mkdir()
    (tmp_path / "nfs" / "x.tar").write_text("x")
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS.read_text() + f"nas:/export {tmp_path / 'nfs'} nfs4 rw,relatime 0 0\n")
    backup = report_of(
        files_job_source(tmp_path, tmp_path / "data", tmp_path / "nfs", mounts_file=mounts)
    )
    assert not backup.same_device


def test_remote_restic_repository_is_off_device(tmp_path: Path) -> None:
    config = {
        "backup": [
            {
                "name": "r",
                "kind": "restic",
                "rpo": "1d",
                "source": str(tmp_path),
                "repository": "sftp:nas:/srv/restic",
                "binary": str(tmp_path / "no-restic"),
            }
        ]
    }
    source = make_source("backup", config, tmp_path / "state")
    backup = report_of(source)
    assert not backup.same_device and backup.error


def test_job_without_source_is_not_judged(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    config = {"backup": [{"name": "f", "kind": "files", "rpo": "1d", "path": str(tmp_path / "b")}]}
    backup = report_of(make_source("backup", config, tmp_path / "state"))
    assert not backup.source_configured and not backup.same_device
