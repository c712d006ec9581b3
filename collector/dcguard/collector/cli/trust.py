"""dcguard-collector commands for trust: `ca init`, `token create`, `agents revoke`."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from dcguard.collector.config import DEFAULT_CONFIG, ServerConfig, load_config
from dcguard.collector.store import StoreError, report_store
from dcguard.collector.trust.ca import CertificateAuthority, TlsFiles, default_server_names, init_ca
from dcguard.collector.trust.registry import EnrollmentRegistry
from dcguard.common.cli import fail
from dcguard.common.durations import parse_duration
from dcguard.common.i18n import tr
from dcguard.common.names import check_name
from dcguard.common.pki import CertificateError, fingerprint

__all__ = ["ca", "revoke", "token"]

PROG = "dcguard-collector"
MAX_TOKEN_TTL = 30 * 86400.0

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Collector config file (TOML).",
)


@contextmanager
def _registry(config: ServerConfig) -> Iterator[EnrollmentRegistry]:
    """The enrollment registry, creating the database (and its tables) if needed."""
    store = report_store(config.database)
    try:
        store.open()
    except StoreError as exc:
        fail(PROG, str(exc), 1)
    store.close()
    registry = EnrollmentRegistry(config.database)
    registry.open()
    try:
        yield registry
    finally:
        registry.close()


@click.group()
def ca() -> None:
    """The collector's certificate authority."""


@ca.command("init")
@config_option
@click.option(
    "--name",
    "names",
    multiple=True,
    help="A DNS name agents dial (repeatable). Default: localhost and this host's names.",
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    help="An IP address agents dial (repeatable). Default: 127.0.0.1 and ::1.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing CA: every enrolled agent must enroll again."
)
def ca_init(
    config_path: Path, names: tuple[str, ...], addresses: tuple[str, ...], force: bool
) -> None:
    """Make the CA and the server certificate under the [tls] dir; print the CA fingerprint."""
    config = load_config(config_path)
    default_names, default_addresses = default_server_names()
    if not names and not addresses:
        names, addresses = tuple(default_names), tuple(default_addresses)
    files = TlsFiles(config.tls_dir)
    try:
        cert = init_ca(files, names, addresses, force=force)
    except (FileExistsError, ValueError) as exc:
        fail(PROG, str(exc))
    except OSError as exc:
        fail(PROG, tr("cannot write {path}: {error}", path=files.directory, error=exc), 1)
    click.echo(tr("CA and server certificate written to {path}", path=files.directory))
    click.echo(tr("server names: {names}", names=", ".join([*names, *addresses])))
    # "CA fingerprint:" and "token:" stay as they are in every language: scripts read them.
    click.echo(f"CA fingerprint: {fingerprint(cert)}")


@ca.command("server-cert")
@config_option
@click.option("--name", "names", multiple=True, help="A DNS name agents dial (repeatable).")
@click.option(
    "--address", "addresses", multiple=True, help="An IP address agents dial (repeatable)."
)
def ca_server_cert(config_path: Path, names: tuple[str, ...], addresses: tuple[str, ...]) -> None:
    """Make a new server certificate from the existing CA (new names, or before it expires).

    Enrolled agents are unaffected. Restart the collector to use it.
    """
    if not names and not addresses:
        fail(PROG, tr("give every --name and --address agents dial (the old list is replaced)"))
    config = load_config(config_path)
    try:
        authority = CertificateAuthority(TlsFiles(config.tls_dir))
        authority.reissue_server(names, addresses)
    except (CertificateError, ValueError) as exc:
        fail(PROG, str(exc))
    except OSError as exc:
        fail(PROG, tr("cannot write {path}: {error}", path=config.tls_dir, error=exc), 1)
    click.echo(
        tr(
            "new server certificate for {names} in {path}; restart the collector to use it",
            names=", ".join([*names, *addresses]),
            path=config.tls_dir,
        )
    )
    click.echo(f"CA fingerprint (unchanged): {authority.fingerprint}")


@click.group()
def token() -> None:
    """One-time enrollment tokens."""


@token.command("create")
@config_option
@click.option("--host", required=True, help="The host name the agent will enroll as.")
@click.option("--department", required=True, help="The agent's department.")
@click.option(
    "--ttl", default="24h", show_default=True, help="How long the token stays usable (at most 30d)."
)
def token_create(config_path: Path, host: str, department: str, ttl: str) -> None:
    """Print a one-time token bound to host and department, and the enroll command."""
    for flag, value in (("--host", host), ("--department", department)):
        problem = check_name(value)
        if problem:
            fail(PROG, flag + ": " + tr("{value} {problem}", value=repr(value), problem=problem))
    try:
        seconds = parse_duration(ttl)
    except ValueError as exc:
        fail(PROG, f"--ttl: {exc}")
    if not 0 < seconds <= MAX_TOKEN_TTL:
        fail(
            PROG,
            "--ttl: " + tr("must be more than 0 and at most 30d, got {value}", value=repr(ttl)),
        )
    config = load_config(config_path)
    try:
        authority = CertificateAuthority(TlsFiles(config.tls_dir))
    except CertificateError as exc:
        fail(PROG, str(exc))
    with _registry(config) as registry:
        secret = registry.create_token(host, department, seconds)
    click.echo(f"token: {secret}")
    click.echo(f"CA fingerprint: {authority.fingerprint}")
    click.echo(
        tr(
            "expires in {ttl}; works once, for host {host} in {department}. On {host}:",
            ttl=ttl,
            host=host,
            department=department,
        )
    )
    click.echo(
        f"  dcguard-agent enroll --token {shlex.quote(secret)} "
        f"--ca-fingerprint {authority.fingerprint}"
    )


@click.command()
@config_option
@click.argument("host")
def revoke(config_path: Path, host: str) -> None:
    """Revoke every certificate of HOST: refused from its next call, no restart needed."""
    problem = check_name(host)
    if problem:
        fail(PROG, "HOST: " + tr("{value} {problem}", value=repr(host), problem=problem))
    config = load_config(config_path)
    with _registry(config) as registry:
        if not registry.known_host(host):
            fail(PROG, tr("no certificate was ever issued to host {host}", host=repr(host)))
        count = registry.revoke_host(host)
    click.echo(
        tr(
            "revoked {count} certificate(s) of {host}; enroll it again with a new token "
            "to let it back in",
            count=count,
            host=host,
        )
    )
