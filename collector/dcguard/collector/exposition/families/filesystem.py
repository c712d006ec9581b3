"""Filesystems: size, free space, inodes, read-only and unreadable state."""

from __future__ import annotations

from collections.abc import Hashable

from dcguard.collector.exposition.families import AddSample
from dcguard.collector.exposition.text import Family
from dcguard.collector.store import AgentRecord

__all__ = ["FilesystemGroup"]

_SIZES = (
    ("dcguard_filesystem_size_bytes", "size_bytes", "Filesystem size."),
    ("dcguard_filesystem_avail_bytes", "avail_bytes", "Space available to unprivileged users."),
    ("dcguard_filesystem_free_bytes", "free_bytes", "Free space, including reserved blocks."),
    ("dcguard_filesystem_files", "files", "Inodes."),
    ("dcguard_filesystem_files_free", "files_free", "Free inodes."),
)


class FilesystemGroup:
    families: tuple[Family, ...] = (
        *(Family(name, "gauge", text) for name, _, text in _SIZES),
        Family("dcguard_filesystem_readonly", "gauge", "1 if mounted read-only."),
        Family(
            "dcguard_filesystem_device_error",
            "gauge",
            "1 if the filesystem could not be read (e.g. a hung network mount).",
        ),
    )
    live_families: tuple[Family, ...] = ()

    def key(self, record: AgentRecord) -> Hashable | None:
        return None  # changes with every report

    def render(self, record: AgentRecord, add: AddSample) -> None:
        if record.latest is None:
            return
        for fs in record.latest.filesystems:
            labels = (("mountpoint", fs.mountpoint), ("device", fs.device), ("fstype", fs.fstype))
            add("dcguard_filesystem_readonly", labels, fs.readonly)
            add("dcguard_filesystem_device_error", labels, bool(fs.error))
            if fs.error:
                continue
            for name, field, _ in _SIZES:
                add(name, labels, getattr(fs, field))

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        pass
