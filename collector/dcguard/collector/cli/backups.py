"""`dcguard-collector backups`: which servers keep no copy off the host, which jobs were
never restore-tested.

The two fleet questions of 3-2-1 and restore testing, answered from the
latest report of every agent (the collector's database, read-only). A server
whose agent reports no copy locations (an older agent) is "unknown", never
counted as lacking a copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dcguard.collector.cli.risk import read_records
from dcguard.collector.config import DEFAULT_CONFIG, load_config
from dcguard.collector.risk.rules import OFF_HOST
from dcguard.collector.store import AgentRecord
from dcguard.common.i18n import resolve
from dcguard.v1 import collector_pb2 as pb

__all__ = ["backups", "fleet_backups"]


def _job(b: pb.Backup) -> dict[str, Any]:
    tested = b.restore_test if b.HasField("restore_test") else None
    return {
        "job": b.job,
        "kind": b.kind,
        "copy_location": b.copy_location or None,
        "restore_test": None
        if tested is None
        else {
            "time": tested.time.seconds + tested.time.nanos / 1e9,
            "success": tested.success,
            "last_success": (
                tested.last_success.seconds + tested.last_success.nanos / 1e9
                if tested.HasField("last_success")
                else None
            ),
            "message": tested.message,
        },
    }


def fleet_backups(records: list[AgentRecord]) -> list[dict[str, Any]]:
    """Per server: its jobs, whether some copy lies off the host, the never-tested jobs."""
    servers = []
    for record in sorted(records, key=lambda r: (r.department, r.host)):
        jobs = [_job(b) for b in record.latest.backups] if record.latest is not None else []
        placed = [j for j in jobs if j["copy_location"]]
        servers.append(
            {
                "host": record.host,
                "department": record.department,
                "off_host_copy": (
                    any(j["copy_location"] in OFF_HOST for j in placed) if placed else None
                ),
                "never_restore_tested": [j["job"] for j in jobs if j["restore_test"] is None],
                "jobs": jobs,
            }
        )
    return servers


@click.command("backups")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Collector config file (TOML).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def backups(config_path: Path, as_json: bool) -> None:
    """Servers with no off-host backup copy, and jobs never restore-tested."""
    config = load_config(config_path)
    lang = resolve(config.language)
    servers = fleet_backups(read_records(config))
    if as_json:
        click.echo(json.dumps(servers, indent=2))
        return
    lacking = [s for s in servers if s["off_host_copy"] is False]
    click.echo(
        lang.tr(
            "No off-host copy: {count} of {total} servers", count=len(lacking), total=len(servers)
        )
    )
    for s in lacking:
        # Location codes (same_disk, this_host…) are label values: the same in every language.
        where = ", ".join(
            f"{j['job']} {j['copy_location']}" for j in s["jobs"] if j["copy_location"]
        )
        click.echo(f"  {s['host']} ({s['department']}): {where}")
    unknown = [s["host"] for s in servers if s["off_host_copy"] is None and s["jobs"]]
    if unknown:
        click.echo(
            "  " + lang.tr("copy locations not reported by: {hosts}", hosts=", ".join(unknown))
        )
    untested = [s for s in servers if s["never_restore_tested"]]
    click.echo(
        lang.tr(
            "Never restore-tested: {count} of {total} servers",
            count=len(untested),
            total=len(servers),
        )
    )
    for s in untested:
        kinds = {j["job"]: j["kind"] for j in s["jobs"]}
        click.echo(
            f"  {s['host']} ({s['department']}): "
            + ", ".join(f"{job} ({kinds[job]})" for job in s["never_restore_tested"])
        )
