"""dcguard-collector migrate and backup: moving a store to PostgreSQL, copying an SQLite one."""

from __future__ import annotations

from pathlib import Path

import click

from dcguard.collector.config import DEFAULT_CONFIG, load_config
from dcguard.collector.store import PostgresDatabase, StoreError, backup, copy_sqlite
from dcguard.common.cli import fail

__all__ = ["backup_command", "migrate"]

PROG = "dcguard-collector"

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Collector config file (TOML).",
)


@click.command()
@config_option
@click.option(
    "--from-sqlite",
    "source",
    type=click.Path(path_type=Path),
    required=True,
    help="The SQLite store to copy (a collector.db, or a backup of one).",
)
def migrate(config_path: Path, source: Path) -> None:
    """Copy an SQLite store into the PostgreSQL store the config names ([store]).

    Agents, certificates, tokens, events and the risk history are copied as
    they are; running it again adds only what is still missing.
    """
    config = load_config(config_path)
    target = config.database
    if not isinstance(target, PostgresDatabase):
        fail(
            PROG,
            f"config {config_path}: store.engine: migrate copies into PostgreSQL; "
            'set engine = "postgresql" and its dsn',
            2,
        )
    try:
        added = copy_sqlite(source, target)
    except StoreError as exc:
        fail(PROG, f"cannot migrate {source}: {exc}", 1)
    for table, count in added.items():
        click.echo(f"{table}: {count} row(s) added")
    click.echo(f"copied {source} into {target}")


@click.command("backup")
@config_option
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path),
    required=True,
    help="The new file to write the copy to.",
)
def backup_command(config_path: Path, target: Path) -> None:
    """A consistent copy of the SQLite store, taken while the collector serves."""
    config = load_config(config_path)
    try:
        size = backup(config.database, target)
    except StoreError as exc:
        fail(PROG, f"cannot back up to {target}: {exc}", 2 if target.exists() else 1)
    click.echo(f"backed up {config.database} to {target} ({size} bytes)")
