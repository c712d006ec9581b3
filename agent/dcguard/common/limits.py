"""The collector's default bounds on one Submit, in one place for both sides.

The collector refuses a report over any of them (collector/validate.py takes
its defaults from here; [limits] can change them there). The agent caps what
it builds at the same numbers (agent/dcguard/agent/cycle/report_cap.py), so a big server's report
is never refused by a collector with default limits: a refused report is a
host that goes silent.
"""

from __future__ import annotations

__all__ = [
    "MAX_ENTRIES",
    "MAX_EVENTS_PER_REPORT",
    "MAX_FILESYSTEMS",
    "MAX_REPORTS_PER_BATCH",
    "MAX_SOURCES",
    "MAX_STRING",
]

MAX_REPORTS_PER_BATCH = 1000
# Filesystems in one report: beyond this many mounts (containers, snaps,
# bind mounts) a server is better served by exclude_fstypes/_mountpoints.
MAX_FILESYSTEMS = 256
MAX_SOURCES = 64
# Any other repeated or map field of a report (disks, backups, members…).
MAX_ENTRIES = 1024
# Report.events: above what an agent sends (three security sources, 500
# events each per report).
MAX_EVENTS_PER_REPORT = 10_000
MAX_STRING = 4096
