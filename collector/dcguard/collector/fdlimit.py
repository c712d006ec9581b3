"""The collector's open-files limit: one descriptor per agent connection, raised at start.

Every agent holds a connection to the collector, and every connection is a
file descriptor, in the collector process or in an ingest process. The
systemd unit sets LimitNOFILE=65536; a collector started another way (by
hand, from a shell, by a container runtime) often inherits a soft limit of
1,024 and could accept no connection past about a thousand agents. The soft
limit is raised to the hard one, as Go programs such as Prometheus do: no
privilege is needed, and the ingest processes inherit it.
"""

from __future__ import annotations

import resource

__all__ = ["DESCRIPTORS_BESIDE_AGENTS", "raise_open_files_limit"]

# The collector's own descriptors beside the agents' (database, log, listeners,
# the metrics port's connections, its ingest processes' pipes): what is left
# is how many agents one process can hold.
DESCRIPTORS_BESIDE_AGENTS = 300


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard in (resource.RLIM_INFINITY, soft):  # Linux never has an unlimited NOFILE
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # refused (a sandbox): keep what there is
        return soft
    return hard
