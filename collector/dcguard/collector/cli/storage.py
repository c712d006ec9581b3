"""dcguard-collector migrate and backup: moving a store to PostgreSQL, copying an SQLite one."""

from __future__ import annotations

from pathlib import Path

import click

from dcguard.collector.config import DEFAULT_CONFIG, load_config
from dcguard.collector.store import PostgresDatabase, StoreError, backup, copy_sqlite
from dcguard.common.cli import fail
from dcguard.common.i18n import tr, trn

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
            tr(
                "config {path}: store.engine: migrate copies into PostgreSQL; "
                'set engine = "postgresql" and its dsn',
                path=config_path,
            ),
            2,
        )
    try:
        added = copy_sqlite(source, target)
    except StoreError as exc:
        fail(PROG, tr("cannot migrate {source}: {error}", source=source, error=exc), 1)
    for table, count in added.items():
        click.echo(
            trn("{table}: {count} row added", "{table}: {count} rows added", count, table=table)
        )
    click.echo(tr("copied {source} into {target}", source=source, target=target))


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
        fail(
            PROG,
            tr("cannot back up to {target}: {error}", target=target, error=exc),
            2 if target.exists() else 1,
        )
    click.echo(
        tr(
            "backed up {database} to {target} ({size} bytes)",
            database=config.database,
            target=target,
            size=size,
        )
    )
