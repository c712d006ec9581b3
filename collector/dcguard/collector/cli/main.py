"""dcguard-collector command line."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from dcguard.collector.cli.backups import backups
from dcguard.collector.cli.events import events
from dcguard.collector.cli.risk import assess, risk
from dcguard.collector.config import DEFAULT_CONFIG, ServerConfig, load_config
from dcguard.collector.fdlimit import DESCRIPTORS_BESIDE_AGENTS, raise_open_files_limit
from dcguard.collector.liveness import is_up
from dcguard.collector.store import (
    DatabaseUnreachable,
    PostgresDatabase,
    ReportStore,
    StoreError,
    report_store,
)
from dcguard.common.cli import fail, run_cli, setup_logging
from dcguard.common.i18n import N_, resolve, tr
from dcguard.common.signals import stop_on_signals
from dcguard.common.systemd import notify
from dcguard.common.version import VERSION

log = logging.getLogger("dcguard.collector")

__all__ = ["main"]

PROG = "dcguard-collector"

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Collector config file (TOML).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name=PROG)
def cli() -> None:
    """dcguard collector: receives agents' reports and serves Prometheus metrics."""


@cli.command()
@config_option
@click.option("--grpc-listen", help="host:port for agents (overrides server.grpc_listen).")
@click.option(
    "--metrics-listen", help="host:port for Prometheus (overrides server.metrics_listen)."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Directory of the database (overrides server.data_dir).",
)
def serve(
    config_path: Path, grpc_listen: str | None, metrics_listen: str | None, data_dir: Path | None
) -> None:
    """Run the collector until SIGTERM or SIGINT."""
    from dcguard.collector.server import CollectorServer

    config = load_config(
        config_path,
        {"grpc_listen": grpc_listen, "metrics_listen": metrics_listen, "data_dir": data_dir},
    )
    setup_logging(config.log_level)
    files = raise_open_files_limit()  # before the server starts: its sockets inherit it
    stop = threading.Event()
    stop_on_signals(stop)
    server = CollectorServer(config)
    try:
        server.start()
    except DatabaseUnreachable as exc:
        # A wrong DSN, password or TLS setting: the config is wrong, as with a bad key.
        fail(PROG, tr("cannot start: {error}", error=exc), 2)
    except (StoreError, RuntimeError, OSError) as exc:
        fail(PROG, tr("cannot start: {error}", error=exc), 1)
    # Logged once serving: a collector that cannot start says only why, in one line.
    log.info(
        "open files limit %d: room for about %d agent connections per process",
        files,
        max(0, files - DESCRIPTORS_BESIDE_AGENTS),
    )
    notify("READY=1")
    stop.wait()
    notify("STOPPING=1")
    server.stop()


@cli.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Validate the config: exit 0, or one line naming the key and exit 2.

    Reads every table `serve` reads ([server], [store], [tls], [limits],
    [risk], [events], [detection], [forward]), with mTLS loads the CA `serve`
    needs, and with a PostgreSQL [store] connects to it (a wrong DSN or
    password, or a database out of reach, is what `serve` would exit 2 on).
    Creates and changes nothing.
    """
    from dcguard.collector.trust.ca import CertificateAuthority, TlsFiles
    from dcguard.common.pki import CertificateError

    config = load_config(config_path)
    if config.insecure:
        trust = tr("plaintext gRPC (loopback only)")
    else:
        try:
            authority = CertificateAuthority(TlsFiles(config.tls_dir))
        except CertificateError as exc:
            fail(
                PROG,
                tr(
                    "config {path}: server.insecure is false and {error}",
                    path=config_path,
                    error=exc,
                ),
            )
        trust = tr("mTLS, CA {fingerprint}", fingerprint=authority.fingerprint)
    store = tr("data_dir {data_dir}", data_dir=config.data_dir)
    if isinstance(config.database, PostgresDatabase):
        _check_database(config_path, config.database)
        store = tr("store {database}", database=config.database)
    click.echo(
        tr(
            "{path}: OK; grpc {grpc} ({trust}), metrics {metrics}, {store}",
            path=config_path,
            grpc=config.grpc_listen,
            trust=trust,
            metrics=config.metrics_listen,
            store=store,
        )
    )


def _check_database(config_path: Path, database: PostgresDatabase) -> None:
    """Connect as `serve` would, read only (no migration): one line and exit 2 if it cannot.

    An SQLite file is not opened: that would create it, and its directory is
    the data_dir `serve` makes.
    """
    store = report_store(database, readonly=True)
    try:
        store.open()
    except StoreError as exc:
        fail(PROG, tr("config {path}: [store] {error}", path=config_path, error=exc))
    finally:
        store.close()


def _open_store(config: ServerConfig) -> ReportStore:
    store = report_store(config.database, readonly=True)
    try:
        store.open()
    except StoreError as exc:
        fail(PROG, str(exc), 1)
    return store


def _agents(config: ServerConfig) -> list[dict[str, Any]]:
    store = _open_store(config)
    try:
        records = store.agents()
    except StoreError as exc:
        fail(PROG, str(exc), 1)
    finally:
        store.close()
    now = time.time()
    scores = {a.host: a.score for a in assess(config, records, now)}
    return [
        {
            "host": r.host,
            "department": r.department,
            "last_seen": r.last_seen,
            "up": is_up(r, now, config.down_after_intervals),
            "agent_version": r.agent_version,
            "os": r.os,
            "reports_stored": r.reports_stored,
            "reports_lost": r.reports_lost,
            "risk_score": scores[r.host],
        }
        for r in sorted(records, key=lambda r: (r.department, r.host))
    ]


@cli.group(invoke_without_command=True)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def agents(ctx: click.Context, config_path: Path, as_json: bool) -> None:
    """List every known agent: host, department, last seen, up, risk score."""
    if ctx.invoked_subcommand is not None:
        return
    config = load_config(config_path)
    lang = resolve(config.language)
    rows = _agents(config)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    # A translated heading may be wider than the English one: its column grows with it.
    headings = [lang.tr(name) for name, _ in _AGENT_COLUMNS]
    widths = [max(width, len(heading)) for heading, (_, width) in zip(headings, _AGENT_COLUMNS)]
    click.echo(_line(headings, widths))
    for row in rows:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["last_seen"]))
        up = lang.tr("yes") if row["up"] else lang.tr("NO")
        click.echo(
            _line(
                [
                    row["host"],
                    row["department"],
                    up,
                    seen,
                    row["reports_stored"],
                    row["reports_lost"],
                    row["risk_score"],
                ],
                widths,
            )
        )
    if not rows:
        click.echo(lang.tr("(no agents have reported yet)"))


# Heading and width of each column of `agents`; the last three are numbers (right-aligned).
_AGENT_COLUMNS = (
    (N_("HOST"), 24),
    (N_("DEPARTMENT"), 20),
    (N_("UP"), 4),
    (N_("LAST SEEN"), 20),
    (N_("STORED"), 8),
    (N_("LOST"), 6),
    (N_("RISK"), 4),
)


def _line(cells: list[Any], widths: list[int]) -> str:
    return " ".join(
        f"{cell:>{width}}" if index >= 4 else f"{cell:<{width}}"
        for index, (cell, width) in enumerate(zip(cells, widths))
    )


from dcguard.collector.cli.storage import backup_command, migrate  # noqa: E402
from dcguard.collector.cli.trust import ca, revoke, token  # noqa: E402 - after the groups

cli.add_command(risk)
cli.add_command(backups)
cli.add_command(ca)
cli.add_command(token)
cli.add_command(events)
cli.add_command(migrate)
cli.add_command(backup_command)
agents.add_command(revoke)


def main() -> None:
    run_cli(cli, PROG)
    sys.exit(0)
