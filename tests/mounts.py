"""Real mounts for tests (we run as root): a tmpfs, or an ext4 filesystem on a loop device."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guards import NOT_INSTALLABLE


def _run(*argv: str) -> str:
    return subprocess.run(
        argv, check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


@contextlib.contextmanager
def tmpfs(mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mountpoint))
    try:
        yield mountpoint
    finally:
        _run("umount", "-l", str(mountpoint))


@contextlib.contextmanager
def loop_ext4(image: Path, mountpoint: Path) -> Iterator[tuple[Path, int, int]]:
    """An ext4 image on a loop device, mounted; yields (mountpoint, major, minor)."""
    if not Path("/dev/loop-control").exists():
        # A container (systemd-nspawn) gets no loop devices; every real machine has them.
        pytest.skip(f"{NOT_INSTALLABLE}: no loop devices on this machine (/dev/loop-control)")
    with image.open("wb") as handle:
        handle.truncate(16 * 2**20)
    _run("mkfs.ext4", "-q", "-F", str(image))
    device = _run("losetup", "-f", "--show", str(image))
    try:
        mountpoint.mkdir(parents=True, exist_ok=True)
        _run("mount", device, str(mountpoint))
        try:
            rdev = Path(device).stat().st_rdev
            yield mountpoint, os.major(rdev), os.minor(rdev)
        finally:
            _run("umount", "-l", str(mountpoint))
    finally:
        _run("losetup", "-d", device)
