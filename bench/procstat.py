"""Reading a process's CPU time and resident memory from /proc, for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    """Resident set size (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return kids
    for task in tasks:
        try:
            kids += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return kids


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the process, the children it has reaped, and every descendant still running.

    The tools an agent runs (journalctl, smartctl) cost the host CPU too; a
    process's own utime/stime leaves them out.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # utime, stime, cutime, cstime: cutime/cstime hold the reaped children's totals.
    own = sum(int(value) for value in fields[11:15]) / TICKS
    return own + sum(tree_cpu_seconds(child) for child in _children(pid))


def tree_rss_mib(pid: int) -> float:
    """Resident memory of the process and every descendant (shared pages counted in each)."""
    try:
        own = rss_mib(pid)
    except FileNotFoundError:
        return 0.0
    return own + sum(tree_rss_mib(child) for child in _children(pid))
