"""Running an external tool (smartctl, restic, borg, journalctl) with a deadline.

Every way a tool can fail to run becomes a ToolError whose message is one
line an operator can act on; the caller reports it instead of crashing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolError", "ToolResult", "ToolUnavailableError", "last_line", "run_tool"]


class ToolError(Exception):
    """The tool could not be run or did not finish: the message says why, in one line."""


class ToolUnavailableError(ToolError):
    """The tool cannot be run at all (missing, not executable): no device will fare better."""


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str


# borg ends a crash report with where it ran; the error is the line before.
_ENVIRONMENT_LINES = ("Platform:", "Linux:", "Borg:", "PID:", "sys.argv:",
                      "SSH_ORIGINAL_COMMAND:")


def last_line(text: str, limit: int = 300) -> str:
    """The last meaningful line of a tool's output, capped: what an error message needs."""
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped and not stripped.startswith(_ENVIRONMENT_LINES):
            return stripped[:limit]
    return ""


def run_tool(argv: Sequence[str], timeout: float,
             env: Mapping[str, str] | None = None) -> ToolResult:
    """Run argv without a shell; stdin is closed so no tool can wait on a prompt.

    env entries are added to (not substituted for) the agent's environment;
    they may hold secrets, so they never appear in any message.
    """
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        completed = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
            env=full_env, check=False,
        )
    except FileNotFoundError:
        raise ToolUnavailableError(f"{argv[0]} not found (install it or set its path in the config)"
                        ) from None
    except PermissionError:
        raise ToolUnavailableError(f"{argv[0]}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{Path(argv[0]).name} did not finish within {timeout:g}s"
                        ) from None
    except OSError as exc:
        raise ToolError(f"{argv[0]}: {exc.strerror or exc}") from None
    return ToolResult(
        completed.returncode,
        completed.stdout.decode("utf-8", errors="replace"),
        completed.stderr.decode("utf-8", errors="replace"),
    )
