"""The collector's config file: [server] (and the tables later features add)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dcguard.collector.limits import Limits
from dcguard.collector.risk.config import RiskConfig, parse_risk
from dcguard.collector.security.config import SecurityConfig, parse_security
from dcguard.collector.store import Database, PostgresDatabase
from dcguard.collector.store.config import parse_store
from dcguard.collector.trust.config import TlsConfig, parse_limits, parse_tls
from dcguard.common.config import (
    ConfigError,
    Table,
    is_loopback_host,
    load_toml,
    parse_listen_address,
)
from dcguard.common.console import read_log_level
from dcguard.common.i18n import LANGUAGES, tr

__all__ = ["DEFAULT_CONFIG", "ServerConfig", "load_config"]

DEFAULT_CONFIG = Path("/etc/dcguard/collector.toml")
MAX_INGEST_PROCESSES = 64


@dataclass(frozen=True)
class ServerConfig:
    path: Path
    grpc_listen: str
    metrics_listen: str
    data_dir: Path
    insecure: bool
    # An agent is down after this many of its own intervals without a report.
    down_after_intervals: int
    log_level: str
    max_message_bytes: int
    tls: TlsConfig
    limits: Limits
    risk: RiskConfig = field(default_factory=RiskConfig)
    # Child processes serving the agent port (0: this process serves it).
    ingest_processes: int = 0
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # The language of what people read (risk sentences, CLI); None: --lang or the locale.
    language: str | None = None
    # [store]: a shared PostgreSQL database, or None for the data dir's SQLite file.
    postgres: PostgresDatabase | None = None
    # The metrics port: a connection that sends no request for this long is
    # closed; beyond this many open connections new ones are closed at once.
    metrics_idle_timeout: float = 30.0
    metrics_max_connections: int = 256

    @property
    def tls_dir(self) -> Path:
        return self.tls.resolve(self.data_dir)

    @property
    def database(self) -> Database:
        """Where the collector's data lives (store/config.py)."""
        if self.postgres is not None:
            return self.postgres
        return self.data_dir / "collector.db"


def _listen(table: Table, key: str, default: str) -> str:
    value = table.string(key, default)
    try:
        parse_listen_address(value)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None
    return value


def _language(table: Table) -> str | None:
    """[server] language: "vi" or "en"; absent leaves it to --lang and the locale."""
    value = table.raw("language", None)
    if value is not None and value not in LANGUAGES:
        raise table.error(
            "language",
            tr(
                "must be one of {choices}, got {value}",
                choices=", ".join(LANGUAGES),
                value=repr(value),
            ),
        )
    return value  # type: ignore[no-any-return]


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> ServerConfig:
    """Read and validate a collector config; flags in overrides win over the file."""
    root = Table(load_toml(path), source=path)
    server = root.table("server")
    log_level = read_log_level(server)
    config = ServerConfig(
        path=path,
        grpc_listen=_listen(server, "grpc_listen", "0.0.0.0:4740"),
        metrics_listen=_listen(server, "metrics_listen", "0.0.0.0:9740"),
        data_dir=server.path("data_dir", "/var/lib/dcguard-collector"),
        insecure=server.boolean("insecure", False),
        down_after_intervals=server.integer("down_after_intervals", 3, minimum=1),
        log_level=log_level,
        max_message_bytes=server.size("max_message_bytes", 4 * 1024 * 1024, minimum=1024),
        tls=parse_tls(root.table("tls")),
        limits=parse_limits(root.table("limits")),
        risk=parse_risk(root.table("risk")),
        security=parse_security(root),
        ingest_processes=server.integer("ingest_processes", 0, minimum=0),
        language=_language(server),
        postgres=parse_store(root.table("store")),
        metrics_idle_timeout=server.duration("metrics_idle_timeout", "30s", minimum=0.1),
        metrics_max_connections=server.integer("metrics_max_connections", 256, minimum=1),
    )
    if config.ingest_processes > MAX_INGEST_PROCESSES:
        raise server.error(
            "ingest_processes",
            tr(
                "must be at most {maximum}, got {value}",
                maximum=MAX_INGEST_PROCESSES,
                value=config.ingest_processes,
            ),
        )
    server.finish()
    root.finish()
    if overrides:
        config = _apply_overrides(config, overrides)
    host, _ = parse_listen_address(config.grpc_listen)
    if config.insecure and not is_loopback_host(host):
        raise ConfigError(
            tr(
                "config {path}: server.insecure: plaintext is refused unless grpc_listen is a "
                "loopback address; {address} is not",
                path=path,
                address=repr(config.grpc_listen),
            )
        )
    return config


def _apply_overrides(config: ServerConfig, overrides: dict[str, Any]) -> ServerConfig:
    for flag in ("grpc_listen", "metrics_listen"):
        value = overrides.get(flag)
        if value is not None:
            try:
                parse_listen_address(value)
            except ValueError as exc:
                raise ConfigError("--" + flag.replace("_", "-") + f": {exc}") from None
    changes = {key: value for key, value in overrides.items() if value is not None}
    return replace(config, **changes)
