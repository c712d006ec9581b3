"""dcguard-agent command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import grpc

from dcguard.agent.cli.backup_report import backup_report
from dcguard.agent.cli.main import PROG
from dcguard.agent.config import DEFAULT_CONFIG, AgentConfig, load_config
from dcguard.agent.cycle.report_builder import build_report, prime
from dcguard.common.cli import run_cli, setup_logging
from dcguard.common.config import ConfigError
from dcguard.common.i18n import N_, Language, current, tr
from dcguard.common.version import VERSION

if TYPE_CHECKING:
    from dcguard.v1 import collector_pb2 as pb

__all__ = ["main"]

PRIME_TIMEOUT = 30.0  # how long `collect` waits for background readers' first round

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Agent config file (TOML).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name=PROG)
def cli() -> None:
    """dcguard agent: reports this server's health, backups and security events."""


@cli.command()
@config_option
def run(config_path: Path) -> None:
    """Run the agent: a report every interval, delivered to the collector."""
    from dcguard.agent.cycle.agent_loop import run_from_file

    run_from_file(config_path)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def collect(config_path: Path, as_json: bool) -> None:
    """Build one report from every enabled source and print it; send nothing."""
    # Only this command prints JSON: json_format stays out of the running agent.
    from google.protobuf import json_format

    config = load_config(config_path)
    setup_logging("warning")
    # A diagnostic writes nothing into data directories: no canaries (the running agent's).
    notes = [note for source in config.sources if (note := _one_shot(source))]
    prime(config.sources, PRIME_TIMEOUT)
    report = build_report(config.sources, sequence=0)
    config.close_sources()
    if as_json:
        data = json_format.MessageToDict(report, preserving_proto_field_name=True)
        for entry in data.get("sources", []):
            # proto3 leaves out a false bool; a consumer must not have to guess.
            entry.setdefault("success", False)
        for entry in data.get("data_coverage", {}).get("locations", []):
            entry.setdefault("backed_up", False)
        click.echo(json.dumps(data, indent=2))
        return
    _print_report(report, current())
    for note in notes:
        click.echo(note)


def _one_shot(source: object) -> str:
    """Tell a source that can change things (the ransomware watcher's canaries) to hold back."""
    hold_back = getattr(source, "one_shot", None)
    return str(hold_back()) if callable(hold_back) else ""


def _print_report(report: pb.Report, lang: Language) -> None:
    """collect's human form: each source's outcome, the host, the filesystems, the data
    locations and the backup job covering each."""
    for status in report.sources:
        outcome = (
            lang.tr("ok") if status.success else lang.tr("FAILED: {error}", error=status.error)
        )
        click.echo(f"{status.name:<12} {status.duration_seconds * 1000:7.1f} ms  {outcome}")
    if report.HasField("host"):
        host = report.host
        click.echo(
            lang.tr(
                "cpu {cpu}  load1 {load1}  memory available {available} of {total}",
                cpu=format(host.cpu_utilization_ratio, ".0%"),
                load1=format(host.load1, ".2f"),
                available=lang.size(host.memory_available_bytes),
                total=lang.size(host.memory_total_bytes),
            )
        )
    for fs in report.filesystems:
        if fs.error:
            click.echo(
                f"{fs.mountpoint:<24} {fs.fstype:<8} " + lang.tr("ERROR {error}", error=fs.error)
            )
        else:
            used = 1 - fs.avail_bytes / fs.size_bytes if fs.size_bytes else 0.0
            line = lang.tr(
                "{used} used of {size}", used=format(used, "4.0%"), size=lang.size(fs.size_bytes)
            )
            if fs.readonly:
                line += lang.tr(" read-only")
            click.echo(f"{fs.mountpoint:<24} {fs.fstype:<8} {line}")
    for location in report.data_coverage.locations:
        covered = (
            lang.tr("backed up by '{job}'", job=location.covered_by)
            if location.backed_up
            else lang.tr("in no backup job")
        )
        click.echo(f"{location.kind:<10} {location.path}  {covered}")
    if report.data_coverage.incomplete:
        click.echo(report.data_coverage.incomplete)


@cli.command("enroll")
@config_option
@click.option(
    "--token", required=True, help="The one-time token from `dcguard-collector token create`."
)
@click.option(
    "--ca-fingerprint",
    required=True,
    help="sha256:… of the collector's CA, as printed with the token.",
)
@click.option(
    "--address",
    help="The collector's enrollment host:port (default: the first collector address, port 4741).",
)
def enroll_command(config_path: Path, token: str, ca_fingerprint: str, address: str | None) -> None:
    """Enroll with the collector: make a key here, get it certified, store the credentials."""
    from dcguard.agent.trust.enroll import EnrollError, default_enroll_address, enroll
    from dcguard.common.cli import fail
    from dcguard.common.config import parse_listen_address
    from dcguard.common.pem import parse_fingerprint

    try:
        pin = parse_fingerprint(ca_fingerprint)
    except ValueError as exc:
        fail(PROG, f"--ca-fingerprint: {exc}")
    if address is not None:
        try:
            parse_listen_address(address)
        except ValueError as exc:
            fail(PROG, f"--address: {exc}")
    config = load_config(config_path)
    target = address or default_enroll_address(config)
    try:
        enroll(config, token, pin, target)
    except EnrollError as exc:
        fail(PROG, str(exc), 1)
    except OSError as exc:
        fail(
            PROG,
            tr("cannot store the credentials in {path}: {error}", path=config.state_dir, error=exc),
            1,
        )
    click.echo(
        tr(
            "enrolled {host} ({department}) with the collector at {address}; credentials "
            "are in {path}",
            host=config.host,
            department=config.department,
            address=target,
            path=config.state_dir / "tls",
        )
    )


@cli.command("check-config")
@config_option
@click.option(
    "--no-credentials",
    is_flag=True,
    help="Check the file only, not that the agent is enrolled (for installers, "
    "before they enroll).",
)
def check_config(config_path: Path, no_credentials: bool) -> None:
    """Validate the config and the enrollment: exit 0, or one line and exit 2.

    Checks what `run` would refuse: with collector.insecure false the agent
    needs the credentials `enroll` stores, so their absence is an error here
    too (a unit must not be told OK and then fail).
    """
    from dcguard.agent.trust.credentials import load_credentials

    config = load_config(config_path)
    # Three whole sentences rather than a suffix: a translator sees each as it is read.
    summary = N_("{path}: OK; host {host}, department {department}, sources: {sources}")
    if not config.collector.insecure:
        try:
            load_credentials(config.state_dir, config.path)
            summary = N_(
                "{path}: OK; host {host}, department {department}, sources: {sources}; enrolled"
            )
        except ConfigError:
            if not no_credentials:
                raise
            summary = N_(
                "{path}: OK; host {host}, department {department}, sources: "
                "{sources}; not enrolled yet"
            )
    names = ", ".join(source.name for source in config.sources)
    click.echo(
        tr(summary, path=config_path, host=config.host, department=config.department, sources=names)
    )


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(config_path: Path, as_json: bool) -> None:
    """Show the spool, what the collector acknowledged, and whether the collector answers.

    Reads the state directory without locking or changing it, so it is safe
    while `dcguard-agent run` is running.
    """
    from dcguard.agent.cli.status import gather_status, render_status

    config = load_config(config_path)
    setup_logging("error")
    try:
        result = gather_status(
            config, {address: _probe(config, address) for address in config.collector.addresses}
        )
    except OSError as exc:
        raise ConfigError(
            tr(
                "cannot read agent.state_dir {path}: {error}",
                path=config.state_dir,
                error=exc.strerror or exc,
            )
        ) from None
    click.echo(json.dumps(result, indent=2) if as_json else render_status(result, current()))


def _probe(config: AgentConfig, address: str) -> str:
    """Ask the collector's standard gRPC health service whether it serves, as `run` connects."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from dcguard.agent.trust.credentials import load_credentials

    if config.collector.insecure:
        channel = grpc.insecure_channel(address)
    else:
        try:
            channel = grpc.secure_channel(address, load_credentials(config.state_dir, config.path))
        except ConfigError:
            return N_("not checked: not enrolled yet (dcguard-agent enroll)")
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=config.collector.timeout
            )
        except grpc.RpcError as exc:
            return f"unreachable ({exc.code().name})"
    return (
        N_("reachable")
        if answer.status == health_pb2.HealthCheckResponse.SERVING
        else (f"not serving ({answer.status})")
    )


cli.add_command(backup_report)


def main() -> None:
    run_cli(cli, PROG)
    sys.exit(0)
