"""Parsing /proc/mdstat into one RaidArray per md device.

The format is the kernel's (drivers/md/md.c, md_seq_show): a header line
"mdN : STATE [(read-only)] [LEVEL] MEMBER[role](F|S|W|J|R)...", an
indented line with the size and, for redundant levels, "[total/working]
[UU_]", and optionally a progress line ("recovery = 7.7% ..." or
"resync=DELAYED"). Partial pastes, whitespace-only lines and arrays without
a blank line between them all occur in the field and are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["MdArray", "parse_mdstat"]

_HEADER = re.compile(r"^(md[\w/.\-]*)\s*:\s*(.*)$")
_MEMBER = re.compile(r"^([^\s\[\]]+)\[(\d+)\]((?:\([A-Za-z]\))*)$")
_LEVEL = re.compile(r"^(raid\d+|linear|multipath|faulty|container)$")
_STATUS = re.compile(r"\[(\d+)/(\d+)\]\s*\[([U_]*)\]")
_PROGRESS = re.compile(r"\b(resync|recovery|check|reshape|repair)\s*=\s*([\d.]+)%")
_PENDING = re.compile(r"\b(resync|recovery|check|reshape|repair)\s*=\s*(DELAYED|PENDING)\b")
_MAX_DISKS = 1 << 16
_EXTERNAL = re.compile(r"\bsuper external:(?!/)")


@dataclass
class MdArray:
    """One md array as /proc/mdstat describes it."""

    name: str
    state: str = ""
    level: str = ""
    members: list[str] = field(default_factory=list)
    failed_members: list[str] = field(default_factory=list)
    spares: list[str] = field(default_factory=list)
    disks_total: int = 0
    disks_active: int = 0
    has_status: bool = False
    container: bool = False
    sync_action: str = ""
    sync_progress_ratio: float = 0.0

    @property
    def degraded(self) -> bool:
        """Fewer working disks than the array needs, or not running at all.

        An inactive array serves no data, so it counts as degraded; the one
        exception is an external-metadata container (IMSM/DDF), which the
        kernel always lists as inactive.
        """
        if self.state.startswith("inactive"):
            return not self.container
        return self.has_status and self.disks_active < self.disks_total


def _parse_header(array: MdArray, rest: str) -> None:
    words = rest.split()
    state: list[str] = []
    index = 0
    if words and words[0] in ("active", "inactive"):
        state.append(words[0])
        index = 1
        # "(auto-read-only)", "(read-only)" follow the state word.
        while index < len(words) and words[index].startswith("(") and words[index].endswith(")"):
            state.append(words[index])
            index += 1
    array.state = " ".join(state)
    for word in words[index:]:
        if not array.level and not array.members and _LEVEL.match(word):
            array.level = word
            continue
        member = _MEMBER.match(word)
        if member is None:
            continue
        name, flags = member.group(1), member.group(3)
        array.members.append(name)
        if "(F)" in flags:
            array.failed_members.append(name)
        elif "(S)" in flags:
            array.spares.append(name)


def _parse_detail(array: MdArray, line: str) -> None:
    status = _STATUS.search(line)
    if status and not array.has_status:
        array.has_status = True
        # Bounded: a garbled line must not overflow the report's uint32 fields.
        array.disks_total = min(int(status.group(1)), _MAX_DISKS)
        array.disks_active = min(int(status.group(2)), _MAX_DISKS)
    if _EXTERNAL.search(line):
        array.container = True
    progress = _PROGRESS.search(line)
    if progress:
        array.sync_action = progress.group(1)
        array.sync_progress_ratio = min(1.0, float(progress.group(2)) / 100.0)
        return
    pending = _PENDING.search(line)
    if pending and not array.sync_action:
        array.sync_action = pending.group(1)
        array.sync_progress_ratio = 0.0


def parse_mdstat(text: str) -> list[MdArray]:
    """Every array in the text, in file order; lines that fit no array are ignored."""
    arrays: list[MdArray] = []
    current: MdArray | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header and not line.startswith(("Personalities", "unused devices")):
            current = MdArray(name=header.group(1))
            _parse_header(current, header.group(2))
            arrays.append(current)
            continue
        if line.startswith(("Personalities", "unused devices", "read_ahead")):
            current = None
            continue
        if current is not None and raw[:1].isspace():
            _parse_detail(current, line)
    for array in arrays:
        _finish(array)
    return arrays


def _finish(array: MdArray) -> None:
    """Fill the counts that levels without a "[n/m]" status (raid0, linear, inactive) lack."""
    working = [m for m in array.members if m not in array.failed_members and m not in array.spares]
    if array.container:
        # An IMSM/DDF container holds its disks for the arrays inside it: the kernel
        # marks them (S) and the container "inactive", but none of them is missing.
        array.disks_total = array.disks_active = len(array.members)
        array.spares = []
    elif array.state.startswith("inactive"):
        array.disks_total = array.disks_total or len(array.members)
        array.disks_active = 0
    elif not array.has_status:
        array.disks_total = len(working)
        array.disks_active = len(working)
