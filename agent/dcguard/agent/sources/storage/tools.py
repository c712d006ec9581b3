"""Running an external tool (smartctl, restic, borg, journalctl) with a deadline.

Every way a tool can fail to run becomes a ToolError whose message is one
line an operator can act on; the caller reports it instead of crashing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolError", "ToolResult", "ToolUnavailableError", "error_line", "run_tool"]


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
# Terminal control (restic clears its status line with ESC[2K) and progress lines:
# restic's "[0:00] 100.00%  2 / 2 packs", borg --progress's "Checking segments 16.7%".
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_PROGRESS = re.compile(r"^(?:\[\d+:\d\d(?::\d\d)?\]|[A-Za-z .]*\d+(?:\.\d+)?%$)")
# Words that mark a line as an error, in restic's ("Fatal: ...", "Pack ID does not match",
# "pack ...: does not exist"), borg's ("Data integrity error", "... errors found") and
# smartctl's or journalctl's wording.
_ERROR = re.compile(r"fatal|error|does not (?:match|exist)|mismatch|corrupt|damaged|missing"
                    r"|not found|invalid|unable|cannot|can't|failed|denied|refused|timed out"
                    r"|timeout|no such|wrong", re.IGNORECASE)


def _meaningful_lines(text: str) -> list[str]:
    """The lines a person would read: terminal codes, progress and borg's environment dropped.

    A carriage return starts the line again on a terminal, so it splits lines too.
    """
    lines = []
    for raw in re.split(r"[\r\n]+", _ANSI.sub("", text)):
        line = raw.strip()
        if line and not line.startswith(_ENVIRONMENT_LINES) and not _PROGRESS.search(line):
            lines.append(line)
    return lines


def error_line(*outputs: str, limit: int = 300) -> str:
    """What went wrong, in one capped line, from a tool's outputs (stderr first).

    The first error line names the cause ("Pack ID does not match ...") and the last
    the verdict ("Fatal: repository contains errors"): both, when they differ. Without
    an error line, the last meaningful line of the first output that has one.
    """
    lines = [_meaningful_lines(text) for text in outputs]
    errors = [line for group in lines for line in group if _ERROR.search(line)]
    if errors:
        first, last = errors[0], errors[-1]
        text = first if first == last else f"{first}; {last}"
    else:
        text = next((group[-1] for group in lines if group), "")
    return text[:limit]


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
