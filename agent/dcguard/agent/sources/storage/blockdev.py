"""Does a backup live on the same physical disk as the data it protects?

A path is resolved to the filesystem holding it (st_dev), the filesystem to
its block device (/sys/dev/block/MAJ:MIN, or the mount's /dev node for
filesystems with anonymous st_dev such as btrfs), and the block device down
to the disks under it: a partition to its parent disk (it has a "partition"
file), a device-mapper (LVM, LUKS) or md device to every device listed in
its slaves/ directory, recursively. Two paths on the same filesystem are on
the same device whatever /sys says.

Remote repositories (sftp:, s3:, rest:, ssh://, user@host:path) and
network filesystems are off-device. The /sys root and the mount table are
parameters, so the resolution is tested on recorded /sys layouts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NETWORK_FSTYPES",
    "Location",
    "disks_of_device",
    "is_remote_repository",
    "local_repository_path",
    "locate",
    "shared_disks",
    "underlying_disks",
]

NETWORK_FSTYPES = frozenset(
    (
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "fuse.sshfs",
        "sshfs",
        "fuse.glusterfs",
        "fuse.ceph",
        "fuse.davfs2",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.cephfs",
        "fuse.gcsfuse",
    )
)
_RESTIC_REMOTE = re.compile(r"^(sftp|s3|rest|b2|azure|gs|swift|rclone):")
_MAX_DEPTH = 16  # device stacks are a few levels deep; this only stops a cycle


def is_remote_repository(kind: str, repository: str) -> bool:
    """True for a repository reached over the network rather than a local path."""
    if kind == "restic":
        return bool(_RESTIC_REMOTE.match(repository))
    if kind == "borg":
        if repository.startswith("ssh://"):
            return True
        # borg's scp-style "user@host:path" or "host:path": a colon before any slash.
        head = repository.split("/", 1)[0]
        return ":" in head and not repository.startswith("file://")
    return False


def local_repository_path(repository: str) -> str:
    """The filesystem path of a local restic/borg repository string."""
    for prefix in ("local:", "file://"):
        if repository.startswith(prefix):
            return repository[len(prefix) :]
    return repository


@dataclass(frozen=True)
class Location:
    """Where a path's data physically is."""

    filesystem: str  # "MAJ:MIN" of st_dev: equal means the same filesystem
    mount_device: str  # e.g. "/dev/mapper/vg0-data", "tmpfs"
    fstype: str
    disks: frozenset[str]  # the underlying disks ("sda", "nvme0n1"); empty for tmpfs
    remote: bool = False


def _mounts(mounts_file: Path) -> list[tuple[str, str, str]]:
    mounts: list[tuple[str, str, str]] = []
    try:
        text = mounts_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return mounts
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            unescape = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
            mounts.append((fields[0], unescape, fields[2]))
    return mounts


def _mount_of(path: str, mounts_file: Path) -> tuple[str, str]:
    """(device, fstype) of the mount that holds path: the longest matching mountpoint."""
    best = ("", "", "")
    for device, mountpoint, fstype in _mounts(mounts_file):
        inside = path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best[1]):
            best = (device, mountpoint, fstype)
    return best[0], best[2]


def underlying_disks(sys_root: Path, name: str, depth: int = 0) -> set[str]:
    """The whole disks under block device `name` (as in /sys/class/block/NAME)."""
    if depth > _MAX_DEPTH:
        return set()
    node = (sys_root / "class" / "block" / name).resolve()
    slaves = node / "slaves"
    try:
        below = sorted(entry.name for entry in slaves.iterdir())
    except OSError:
        below = []
    if below:
        disks: set[str] = set()
        for slave in below:
            disks |= underlying_disks(sys_root, slave, depth + 1)
        return disks
    if (node / "partition").exists():
        return underlying_disks(sys_root, node.parent.name, depth + 1)
    return {node.name}


def disks_of_device(sys_root: Path, major: int, minor: int) -> frozenset[str]:
    """The disks under block device MAJ:MIN; empty if it is not a block device (tmpfs)."""
    link = sys_root / "dev" / "block" / f"{major}:{minor}"
    if not link.exists():
        return frozenset()
    return frozenset(underlying_disks(sys_root, link.resolve().name))


def _existing(path: str) -> str:
    """The path itself, or its nearest existing parent (a repository not yet created)."""
    current = Path(path).absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return os.path.realpath(current)


def locate(path: str, sys_root: Path, mounts_file: Path) -> Location:
    """Resolve path to its filesystem and underlying disks; OSError if it cannot be stat'ed."""
    real = _existing(path)
    st = Path(real).stat()
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    mount_device, fstype = _mount_of(real, mounts_file)
    if fstype in NETWORK_FSTYPES:
        return Location(f"{major}:{minor}", mount_device, fstype, frozenset(), remote=True)
    disks = disks_of_device(sys_root, major, minor)
    if not disks and mount_device.startswith("/dev/"):
        # btrfs and others report an anonymous st_dev: use the mounted device node.
        try:
            rdev = Path(mount_device).stat().st_rdev
            disks = disks_of_device(sys_root, os.major(rdev), os.minor(rdev))
        except OSError:
            pass
    return Location(f"{major}:{minor}", mount_device, fstype, disks)


def shared_disks(source: Location, backup: Location) -> list[str]:
    """The disks both lie on; the same filesystem counts even when no disk is known."""
    if source.remote or backup.remote:
        return []
    common = source.disks & backup.disks
    if source.filesystem == backup.filesystem and not common:
        return [source.mount_device or f"filesystem {source.filesystem}"]
    return sorted(common)
