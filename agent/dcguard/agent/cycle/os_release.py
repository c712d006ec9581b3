"""The operating system's name from os-release, on every Python the agent runs on.

platform.freedesktop_os_release() arrived in Python 3.10; on 3.9, the Python
of the old servers the agent supports, the os label would only say "Linux".
The file is read here the way the standard library (and os-release(5)) does:
/etc/os-release, then /usr/lib/os-release; KEY=value lines, the value
optionally in single or double quotes with backslash escapes.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

__all__ = ["OS_RELEASE_PATHS", "os_name", "parse_os_release"]

OS_RELEASE_PATHS = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
MAX_BYTES = 64 * 1024  # a real file is a few hundred bytes; never read a huge one whole

# The same grammar as the standard library's reader (Lib/platform.py).
_LINE = re.compile(r"^(?P<name>[a-zA-Z0-9_]+)=(?P<quote>[\"']?)(?P<value>.*)(?P=quote)$")
_UNESCAPE = re.compile(r"\\([\\\$\"\'`])")


def parse_os_release(text: str) -> dict[str, str]:
    """The KEY=value fields of an os-release text; lines that are not fields are skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is not None:
            fields[match.group("name")] = _UNESCAPE.sub(r"\1", match.group("value"))
    return fields


def os_name(paths: tuple[Path, ...] = OS_RELEASE_PATHS) -> str:
    """PRETTY_NAME (else NAME) of the first readable os-release file; else the kernel's name."""
    for path in paths:
        try:
            with open(path, "rb") as handle:
                text = handle.read(MAX_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue
        fields = parse_os_release(text)
        return fields.get("PRETTY_NAME") or fields.get("NAME") or platform.system()
    return platform.system()
