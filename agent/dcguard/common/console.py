"""What a dcguard process writes to stderr: its one-line failures and its log.

Without click, so that `dcguard-agent run` can fail the same way as every
other command without loading a CLI framework it does not otherwise need
(see dcguard.agent.cli.main). dcguard.common.cli re-exports these.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, NoReturn

from dcguard.common.i18n import tr

if TYPE_CHECKING:
    from dcguard.common.config import Table

__all__ = ["EXIT_USAGE", "LOG_LEVELS", "fail", "read_log_level", "setup_logging"]

EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error")


def fail(prog: str, message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line to stderr and exit."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def setup_logging(level: str) -> None:
    """Log to stderr in a journald-friendly form (journald adds the time)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def read_log_level(table: Table) -> str:
    """The table's log_level key ([agent] or [server]): one of LOG_LEVELS, default info."""
    level = table.string("log_level", "info")
    if level not in LOG_LEVELS:  # the message only then: translations load on an error
        raise table.error(
            "log_level",
            tr(
                "must be one of {choices}, got {value}",
                choices=", ".join(LOG_LEVELS),
                value=repr(level),
            ),
        )
    return level
