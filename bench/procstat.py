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


IO_FIELDS = ("rchar", "wchar", "read_bytes", "write_bytes", "cancelled_write_bytes")


def io_counters(pid: int) -> dict[str, int]:
    """/proc/PID/io: the process's threads and the children it has reaped (empty if it is gone).

    read_bytes/write_bytes are what reached (or would reach) the storage layer;
    rchar/wchar every byte through read()/write(), page cache hits included.
    """
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    counters = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in IO_FIELDS:
            counters[key] = int(value)
    return counters


def tree_io(pid: int) -> dict[str, int]:
    """I/O of the process (reaped children included) plus every descendant still running.

    The kernel adds a child's counters to its parent's only when the parent
    reaps it, so a tool still running is read from its own /proc/PID/io: sample
    often enough and the sum follows the tree's whole I/O.
    """
    total = dict.fromkeys(IO_FIELDS, 0)
    for key, value in io_counters(pid).items():
        total[key] += value
    for child in _children(pid):
        for key, value in tree_io(child).items():
            total[key] += value
    return total


def descendants(pid: int) -> list[int]:
    """Every running descendant of pid, depth first."""
    found: list[int] = []
    for child in _children(pid):
        found += [child, *descendants(child)]
    return found


def tree_fds(pid: int) -> int:
    """Open file descriptors of the process and every descendant (sockets included)."""
    total = 0
    for p in (pid, *descendants(pid)):
        try:
            total += sum(1 for _ in Path(f"/proc/{p}/fd").iterdir())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def thread_activity(pid: int) -> dict[int, tuple[str, int, float]]:
    """Each live thread of pid: (name, context switches, CPU seconds from schedstat).

    Context switches are voluntary + nonvoluntary (/proc/PID/task/TID/status):
    each is one time the thread went to sleep or was preempted, so their rate
    is how often the thread wakes. schedstat's first field is the nanoseconds
    the thread ran, finer than the tick-based utime/stime in stat.
    """
    found: dict[int, tuple[str, int, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            status = (task / "status").read_text()
            ran_ns = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
        name, switches = "", 0
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key == "Name":
                name = value.strip()
            elif key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                switches += int(value)
        found[int(task.name)] = (name, switches, ran_ns / 1e9)
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB from /proc/PID/smaps_rollup; (0, 0) if the process is gone.

    PSS divides each shared page among the processes that map it, so the PSS
    of a tree adds up without counting a shared library once per process.
    """
    values = {"Rss": 0, "Pss": 0}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0, 0.0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["Rss"] / 1024, values["Pss"] / 1024


def tree_memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of the process and every running descendant, summed."""
    rss, pss = 0.0, 0.0
    for member in (pid, *descendants(pid)):
        member_rss, member_pss = memory_mib(member)
        rss, pss = rss + member_rss, pss + member_pss
    return rss, pss


def command_line(pid: int) -> str:
    """The process's command line, arguments joined by spaces ('' once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (/proc/loadavg)."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)
