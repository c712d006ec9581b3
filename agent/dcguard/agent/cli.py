"""dcguard-agent command line."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import click
import grpc
from google.protobuf import json_format

from dcguard.agent.backup_report import backup_report
from dcguard.agent.config import DEFAULT_CONFIG, AgentConfig, load_config
from dcguard.agent.runner import build_report
from dcguard.agent.sources import Source
from dcguard.agent.state import AgentState
from dcguard.common.cli import run_cli, setup_logging
from dcguard.common.version import VERSION
from dcguard.v1 import collector_pb2 as pb

__all__ = ["main"]

PROG = "dcguard-agent"
PRIME_TIMEOUT = 30.0  # how long `collect` waits for background readers' first round

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_CONFIG,
    show_default=True, help="Agent config file (TOML).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name=PROG)
def cli() -> None:
    """dcguard agent: reports this server's health, backups and security events."""


@cli.command()
@config_option
def run(config_path: Path) -> None:
    """Run the agent: a report every interval, delivered to the collector."""
    from dcguard.agent.service import run_agent

    config = load_config(config_path)
    setup_logging(config.log_level)
    run_agent(config)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def collect(config_path: Path, as_json: bool) -> None:
    """Build one report from every enabled source and print it; send nothing."""
    config = load_config(config_path)
    setup_logging("warning")
    _prime(config.sources, PRIME_TIMEOUT)
    report = build_report(config.sources, sequence=0)
    config.close_sources()
    if as_json:
        click.echo(json_format.MessageToJson(report, preserving_proto_field_name=True,
                                             indent=2))
        return
    for status in report.sources:
        outcome = "ok" if status.success else f"FAILED: {status.error}"
        click.echo(f"{status.name:<12} {status.duration_seconds * 1000:7.1f} ms  {outcome}")
    if report.HasField("host"):
        host = report.host
        click.echo(f"cpu {host.cpu_utilization_ratio:.0%}  load1 {host.load1:.2f}  "
                   f"memory available {host.memory_available_bytes / 2**30:.1f} GiB "
                   f"of {host.memory_total_bytes / 2**30:.1f} GiB")
    for fs in report.filesystems:
        if fs.error:
            click.echo(f"{fs.mountpoint:<24} {fs.fstype:<8} ERROR {fs.error}")
        else:
            used = 1 - fs.avail_bytes / fs.size_bytes if fs.size_bytes else 0.0
            ro = " read-only" if fs.readonly else ""
            click.echo(f"{fs.mountpoint:<24} {fs.fstype:<8} {used:4.0%} used of "
                       f"{fs.size_bytes / 2**30:.1f} GiB{ro}")


def _prime(sources: tuple[Source, ...], timeout: float) -> None:
    """Start sources that read in background threads (SMART, journal, backups); wait one round.

    In `run` their first results arrive within a report or two; a one-shot
    collect would otherwise print them empty.
    """
    deadline = time.monotonic() + timeout
    waits = []
    for source in sources:
        wait = getattr(source, "wait_rounds", None)
        if wait is None:
            continue
        with contextlib.suppress(Exception):  # the real collect below reports any failure
            source.collect(pb.Report())
        waits.append(wait)
    for wait in waits:
        wait(1, max(0.0, deadline - time.monotonic()))


@cli.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Validate the config: exit 0, or one line naming the key and exit 2."""
    config = load_config(config_path)
    names = ", ".join(source.name for source in config.sources)
    click.echo(f"{config_path}: OK; host {config.host}, department {config.department}, "
               f"sources: {names}")


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(config_path: Path, as_json: bool) -> None:
    """Show the last sequence, what the collector acknowledged, and whether it answers."""
    config = load_config(config_path)
    state = AgentState(config.state_dir)
    result = {
        "host": config.host,
        "state_dir": str(config.state_dir),
        "instance_id": state.instance_id,
        "last_sequence": state.last_sequence,
        "acked_sequence": state.acked_sequence,
        "collectors": {address: _probe(config, address) for address in
                       config.collector.addresses},
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for key in ("host", "state_dir", "instance_id", "last_sequence", "acked_sequence"):
        click.echo(f"{key:<16} {result[key]}")
    for address, answer in result["collectors"].items():  # type: ignore[attr-defined]
        click.echo(f"collector        {address}: {answer}")


def _probe(config: AgentConfig, address: str) -> str:
    """Ask the collector's standard gRPC health service whether it serves."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if not config.collector.insecure:
        return "not checked: TLS credentials are not set up (enroll first)"
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=config.collector.timeout)
        except grpc.RpcError as exc:
            return f"unreachable ({exc.code().name})"
    return "reachable" if answer.status == health_pb2.HealthCheckResponse.SERVING else (
        f"not serving ({answer.status})")


cli.add_command(backup_report)


def main() -> None:
    run_cli(cli, PROG)
    sys.exit(0)
