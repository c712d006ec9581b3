"""`dcguard-collector events`: the stored security events, newest last, as a table or JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from dcguard.collector.config import DEFAULT_CONFIG, load_config
from dcguard.collector.events import SEVERITIES, StoredEvent
from dcguard.collector.security.storage import EventQuery, query_events
from dcguard.collector.store import StoreError, open_event_store
from dcguard.common.cli import fail
from dcguard.common.durations import parse_duration
from dcguard.common.i18n import N_, resolve, tr

__all__ = ["events"]

PROG = "dcguard-collector"
_CHOICES = tuple(dict.fromkeys(SEVERITIES))
# The table's columns before the message: heading and width.
_HEADINGS = (
    (N_("TIME"), 19),
    (N_("HOST"), 20),
    (N_("SEVERITY"), 8),
    (N_("TYPE"), 24),
    (N_("TECHNIQUE"), 9),
    (N_("USER"), 16),
    (N_("SOURCE"), 15),
)


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return time.time() - seconds


def _one_line(text: str, width: int) -> str:
    """Table cells stay on one line whatever the event holds."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _row(event: StoredEvent) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time))
    marker = "!" if event.detection else " "
    what = event.raw or event.path or (f"{event.protocol}/{event.port}" if event.port else "")
    return (
        f"{when:<19} {_one_line(event.host, 20):<20} {event.severity:<8} {marker}"
        f"{_one_line(event.type, 24):<24} {_one_line(event.technique, 9):<9} "
        f"{_one_line(event.user, 16):<16} {_one_line(event.source_address, 39):<15} "
        f"{_one_line(what, 80)}"
    )


@click.command("events")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Collector config file (TOML).",
)
@click.option("--host", help="Only this host's events.")
@click.option(
    "--since",
    callback=_since,
    metavar="DURATION",
    help='Only events from the last DURATION, e.g. "1h", "30m", "7d".',
)
@click.option(
    "--min-severity",
    type=click.Choice(_CHOICES),
    default="info",
    show_default=True,
    help="Only events at least this severe.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=1_000_000),
    default=100,
    show_default=True,
    help="At most this many (the newest) events.",
)
def events(
    config_path: Path,
    host: str | None,
    since: float | None,
    min_severity: str,
    as_json: bool,
    limit: int,
) -> None:
    """Security events the collector stored (detections marked "!"), oldest first."""
    config = load_config(config_path)
    lang = resolve(config.language)
    try:
        store = open_event_store(config.database, readonly=True)
        try:
            found = query_events(
                store, EventQuery(host=host, since=since, min_severity=min_severity, limit=limit)
            )
        finally:
            store.close()
    except StoreError as exc:
        fail(
            PROG, tr("cannot read events from {path}: {error}", path=config.database, error=exc), 1
        )
    if as_json:
        click.echo(json.dumps([event.as_dict() for event in found], indent=2))
        return
    # Headings are translated; the columns keep their widths (values are codes and names).
    click.echo(
        " ".join(f"{lang.tr(name):<{width}}" for name, width in _HEADINGS)
        + " "
        + lang.tr("MESSAGE")
    )
    for event in found:
        click.echo(_row(event))
    if not found:
        click.echo(lang.tr("(no events match)"))
