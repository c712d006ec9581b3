"""The `dcguard-agent` entry point: what keeps the agent small, then the CLI.

Kept apart from cli.py because this must come before anything cli.py
imports (lean.py).
"""

from __future__ import annotations

from dcguard.agent.lean import load_without_libcrypto

__all__ = ["main"]


def main() -> None:
    load_without_libcrypto()
    from dcguard.agent.cli import main as cli_main

    cli_main()
