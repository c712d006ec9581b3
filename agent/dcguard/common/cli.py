"""Running a click command group so that every usage or config error is one line and exit 2."""

from __future__ import annotations

import sys
from typing import Any

import click

from dcguard.common import i18n
from dcguard.common.config import ConfigError
from dcguard.common.console import EXIT_USAGE, fail, setup_logging
from dcguard.common.i18n import tr

__all__ = ["EXIT_USAGE", "add_language_option", "fail", "run_cli", "setup_logging"]


# click 8.2 added NoArgsIsHelpError; Python 3.9 installs click 8.1, where an
# except clause naming it raised AttributeError on every error exit (even
# fail()'s SystemExit). An empty tuple matches nothing.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _choose_language(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        i18n.choose(value)


def add_language_option(command: click.Command) -> None:
    """--lang on a command and, for a group, on every command in it, so that both
    `dcguard-collector --lang vi risk` and `dcguard-collector risk --lang vi` work.
    Eager: the language is chosen before any other option or the config is read."""
    command.params.append(
        click.Option(
            ["--lang"],
            type=click.Choice(i18n.LANGUAGES),
            expose_value=False,
            is_eager=True,
            callback=_choose_language,
            help="Language of what is printed: vi or en (default: [server] language on the "
            "collector, then LC_ALL, LC_MESSAGES or LANG, then en).",
        )
    )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_language_option(sub)


def run_cli(group: click.Group, prog: str) -> None:
    """Invoke a click group; usage and config errors become one line, exit 2.

    click's own handling prints a usage block and "Error:" over several
    lines; scripts and operators at 2 a.m. want one line that names the flag.
    """
    add_language_option(group)
    try:
        group.main(prog_name=prog, standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        fail(prog, exc.format_message().replace("\n", " "))
    except ConfigError as exc:
        fail(prog, str(exc))
    except click.exceptions.Abort:
        fail(prog, tr("aborted"), 1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        fail(prog, exc.format_message().replace("\n", " "), exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
