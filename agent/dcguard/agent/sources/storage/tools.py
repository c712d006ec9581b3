"""Running an external tool (smartctl, restic, borg, journalctl) with a deadline.

Every way a tool can fail to run becomes a ToolError whose message is one
line an operator can act on; the caller reports it instead of crashing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ToolError",
    "ToolExitError",
    "ToolResult",
    "ToolUnavailableError",
    "error_line",
    "low_priority",
    "run_tool",
    "stream_tool",
]


class ToolError(Exception):
    """The tool could not be run or did not finish: the message says why, in one line."""


class ToolExitError(ToolError):
    """The tool ran and exited non-zero: it answered, and the answer is a failure."""


class ToolUnavailableError(ToolError):
    """The tool cannot be run at all (missing, not executable): no device will fare better."""


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str


# borg ends a crash report with where it ran; the error is the line before.
_ENVIRONMENT_LINES = ("Platform:", "Linux:", "Borg:", "PID:", "sys.argv:", "SSH_ORIGINAL_COMMAND:")
# Terminal control (restic clears its status line with ESC[2K) and progress lines:
# restic's "[0:00] 100.00%  2 / 2 packs", borg --progress's "Checking segments 16.7%".
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_PROGRESS = re.compile(r"^(?:\[\d+:\d\d(?::\d\d)?\]|[A-Za-z .]*\d+(?:\.\d+)?%$)")
# Words that mark a line as an error, in restic's ("Fatal: ...", "Pack ID does not match",
# "pack ...: does not exist"), borg's ("Data integrity error", "... errors found") and
# smartctl's or journalctl's wording.
_ERROR = re.compile(
    r"fatal|error|does not (?:match|exist)|mismatch|corrupt|damaged|missing"
    r"|not found|invalid|unable|cannot|can't|failed|denied|refused|timed out"
    r"|timeout|no such|wrong",
    re.IGNORECASE,
)


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


def low_priority(argv: Sequence[str]) -> list[str]:
    """argv run at the lowest CPU priority and best-effort I/O priority 7.

    Wrapped with nice(1)/ionice(1) rather than os.nice() in the agent: nice()
    would lower the agent's own thread for good (raising it back needs
    privileges), and a preexec_fn is unsafe in a threaded process. ionice is
    left out where util-linux lacks it; best-effort 7 rather than idle, so a
    drill on a busy server still ends within its timeout.
    """
    prefix = ["nice", "-n", "19"]
    ionice = shutil.which("ionice")
    if ionice:
        prefix += [ionice, "-c", "2", "-n", "7"]
    return [*prefix, *argv]


def run_tool(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ToolResult:
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
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise ToolUnavailableError(
            f"{argv[0]} not found (install it or set its path in the config)"
        ) from None
    except PermissionError:
        raise ToolUnavailableError(f"{argv[0]}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{Path(argv[0]).name} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise ToolError(f"{argv[0]}: {exc.strerror or exc}") from None
    return ToolResult(
        completed.returncode,
        completed.stdout.decode("utf-8", errors="replace"),
        completed.stderr.decode("utf-8", errors="replace"),
    )


def stream_tool(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Yield argv's stdout line by line, for listings too big to hold in memory.

    The tool is killed when the deadline passes or the caller stops early;
    a non-zero exit or the deadline raises ToolError with the tool's error line
    once the listing ends (the lines already read are not taken back).
    """
    full_env = {**os.environ, **env} if env else None
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=full_env,
            )
        except FileNotFoundError:
            raise ToolUnavailableError(
                f"{argv[0]} not found (install it or set its path in the config)"
            ) from None
        except OSError as exc:
            raise ToolError(f"{argv[0]}: {exc.strerror or exc}") from None
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            process.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            for raw in process.stdout or ():
                yield raw.decode("utf-8", errors="replace")
            returncode = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if expired.is_set():
            raise ToolError(f"{Path(argv[0]).name} did not finish within {timeout:g}s")
        if returncode != 0:
            errors.seek(0)
            message = error_line(errors.read(64 * 1024).decode("utf-8", errors="replace"))
            raise ToolExitError(f"exited with {returncode}: {message or 'no message'}")
