"""What a host, department or other identifying name may contain.

These names become Prometheus label values and appear in alerts, so they are
kept to the characters a DNS label or a department code uses: nothing that
could break the exposition format or a log line.
"""

from __future__ import annotations

import re

from dcguard.common.i18n import tr

__all__ = ["MAX_NAME_LENGTH", "check_name"]

MAX_NAME_LENGTH = 128
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(value: str) -> str | None:
    """Return why value is not an acceptable name, or None if it is."""
    if not value:
        return tr("must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        return tr("must be at most {maximum} characters", maximum=MAX_NAME_LENGTH)
    # fullmatch: `$` would let a trailing newline through, into label values and logs.
    if not _NAME.fullmatch(value):
        return tr(
            "may contain only letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return None
