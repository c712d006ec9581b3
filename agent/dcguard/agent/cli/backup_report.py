"""`dcguard-agent backup-report`: a backup script records a run of a push job.

It only writes the job's record in state_dir (see storage/push.py), so it
works while `dcguard-agent run` is running, needs no network, and the run
is reported with the agent's next report, even after a restart.
"""

from __future__ import annotations

from pathlib import Path

import click

from dcguard.agent.config import DEFAULT_CONFIG, load_config
from dcguard.agent.sources.storage.backup_config import parse_backups
from dcguard.agent.sources.storage.push import record_run
from dcguard.common.config import Table, load_toml
from dcguard.common.i18n import tr

__all__ = ["backup_report"]


@click.command("backup-report")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Agent config file (TOML).",
)
@click.option("--job", required=True, help="The name of a [[backup]] job of kind push.")
@click.option(
    "--status", type=click.Choice(["success", "failure"]), required=True, help="How the run ended."
)
@click.option(
    "--bytes",
    "size",
    type=click.IntRange(min=0),
    default=None,
    help="Size of what the run wrote, in bytes.",
)
@click.option("--message", default="", help="A short note (capped at 500 characters).")
def backup_report(config_path: Path, job: str, status: str, size: int | None, message: str) -> None:
    """Record one run of a push backup job (call it at the end of your backup script)."""
    config = load_config(config_path)
    jobs = {j.name: j for j in parse_backups(Table(load_toml(config_path), source=config_path))}
    if job not in jobs:
        known = ", ".join(sorted(n for n, j in jobs.items() if j.kind == "push")) or tr("none")
        raise click.BadParameter(
            tr("no [[backup]] job named {job} (push jobs: {known})", job=repr(job), known=known),
            param_hint="--job",
        )
    if jobs[job].kind != "push":
        raise click.BadParameter(
            tr(
                "job {job} is of kind {kind}; only push jobs take reported runs",
                job=repr(job),
                kind=repr(jobs[job].kind),
            ),
            param_hint="--job",
        )
    try:
        record = record_run(
            config.state_dir, job, status == "success", size, message, min_size=jobs[job].min_size
        )
    except OSError as exc:
        raise click.ClickException(
            tr(
                "cannot record the run in {path}: {error}",
                path=config.state_dir,
                error=exc.strerror or exc,
            )
        ) from None
    outcome = (
        tr("success")
        if record.last_run_success
        else tr("failure ({message})", message=record.message)
    )
    click.echo(tr("recorded {job}: {outcome}", job=job, outcome=outcome))
