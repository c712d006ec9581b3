"""The `dcguard-agent` entry point: what keeps the long-running agent small, then the CLI.

Kept apart from commands.py because it must act before commands.py's imports:

- grpc and hashlib are loaded without OpenSSL's libcrypto (runtime/no_libcrypto.py);
- a plain `dcguard-agent run [--config F]`, the one command that runs for
  months, starts without click, whose objects would otherwise stay
  resident all that time (about 0.7-1 MiB measured). Any other command
  line, including every malformed or --help one, goes to click
  (commands.py), which defines the commands and their messages; the run
  itself is the same function either way (service.run_from_file).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dcguard.agent.runtime.no_libcrypto import load_without_libcrypto

__all__ = ["PROG", "main", "plain_run_config"]

PROG = "dcguard-agent"
_CONFIG = "--config"


def plain_run_config(args: list[str], default: Path) -> Path | None:
    """The config path of `run`, `run --config F` or `run --config=F`; None otherwise.

    Only the forms click parses the same way are taken: a value that is
    empty or could be read as an option goes to click with the rest.
    """
    if not args or args[0] != "run":
        return None
    rest = args[1:]
    if not rest:
        return default
    if len(rest) == 2 and rest[0] == _CONFIG:
        value = rest[1]
    elif len(rest) == 1 and rest[0].startswith(_CONFIG + "="):
        value = rest[0][len(_CONFIG) + 1 :]
    else:
        return None
    return Path(value) if value and not value.startswith("-") else None


def main() -> None:
    load_without_libcrypto()
    from dcguard.agent.config import DEFAULT_CONFIG

    config_path = plain_run_config(sys.argv[1:], DEFAULT_CONFIG)
    if config_path is None:
        from dcguard.agent.cli.commands import main as cli_main

        cli_main()
        return
    from dcguard.agent.cycle.agent_loop import run_from_file
    from dcguard.common.config import ConfigError
    from dcguard.common.console import fail

    try:
        run_from_file(config_path)
    except ConfigError as exc:
        fail(PROG, str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
