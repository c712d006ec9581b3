"""`dcguard-collector risk`: servers at risk of data loss, worst first, in plain sentences.

Reads the collector's database read-only and runs the same RiskEngine as
/metrics, so the CLI and Prometheus never disagree about a host.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from dcguard.collector.config import DEFAULT_CONFIG, ServerConfig, load_config
from dcguard.collector.risk.engine import Assessment, RiskEngine
from dcguard.collector.store import AgentRecord, StoreError, report_store
from dcguard.common.cli import fail
from dcguard.common.i18n import Language, resolve

__all__ = ["assess", "read_records", "risk"]

PROG = "dcguard-collector"


def assess(
    config: ServerConfig, records: list[AgentRecord], now: float, lang: Language | None = None
) -> list[Assessment]:
    """Every host's assessment as of now, worst first, with the stored filesystem trends
    and ransomware signs."""
    engine = RiskEngine(config.risk, config.down_after_intervals)
    try:
        engine.load(config.database)
    except StoreError as exc:
        fail(PROG, str(exc), 1)
    return engine.assess_all(records, now, lang)


def read_records(config: ServerConfig) -> list[AgentRecord]:
    """Every known agent, read from the collector's database read-only; exit 1 if unreadable."""
    store = report_store(config.database, readonly=True)
    try:
        store.open()
        return store.agents()
    except StoreError as exc:
        fail(PROG, str(exc), 1)
    finally:
        store.close()


def as_dict(a: Assessment) -> dict[str, Any]:
    return {
        "host": a.host,
        "department": a.department,
        "score": a.score,
        "reasons": [
            {"reason": s.reason, "subject": s.subject, "weight": s.weight, "message": s.message}
            for s in a.statements
        ],
    }


@click.command("risk")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Collector config file (TOML).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--all", "show_all", is_flag=True, help="Also list servers with no risk.")
def risk(config_path: Path, as_json: bool, show_all: bool) -> None:
    """Servers at risk of data loss, worst first, each reason in a plain sentence."""
    config = load_config(config_path)
    lang = resolve(config.language)
    records = read_records(config)
    assessments = assess(config, records, time.time(), lang)
    shown = [a for a in assessments if show_all or a.statements]
    if as_json:
        click.echo(json.dumps([as_dict(a) for a in shown], indent=2))
        return
    for a in shown:
        click.echo(
            lang.tr(
                "{host} ({department}): risk {score}/100",
                host=a.host,
                department=a.department,
                score=a.score,
            )
        )
        for s in a.statements:
            click.echo(f"  {s.reason}: {s.message}")
    at_risk = sum(1 for a in assessments if a.statements)
    if at_risk:
        click.echo(
            lang.tr("{count} of {total} servers at risk", count=at_risk, total=len(assessments))
        )
    else:
        click.echo(lang.tr("no server at risk ({total} known)", total=len(assessments)))
