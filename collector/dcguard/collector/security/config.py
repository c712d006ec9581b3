"""The collector's [events], [detection] and [forward] tables."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from dcguard.collector.events import severity_rank
from dcguard.common.config import Table, parse_listen_address
from dcguard.common.i18n import tr

__all__ = [
    "DetectionConfig",
    "EventsConfig",
    "FileForwardConfig",
    "ForwardConfig",
    "SecurityConfig",
    "SyslogForwardConfig",
    "parse_security",
    "tls_context",
]

# RFC 5424 facility names → codes (section 6.2.1).
FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}
TRANSPORTS = ("tcp", "tls", "udp")


@dataclass(frozen=True)
class EventsConfig:
    retention_seconds: float = 90 * 86400.0
    prune_interval_seconds: float = 3600.0


@dataclass(frozen=True)
class DetectionConfig:
    """Thresholds of the collector's correlation rules (see docs/security-collector.md)."""

    brute_force: bool = True
    brute_force_threshold: int = 8  # Wazuh rule 5763: 8 failures ...
    brute_force_window: float = 120.0  # ... within 120 s, same source
    brute_force_suppress: float = 120.0  # one detection per window per attack
    distributed: bool = True
    distributed_hosts: int = 3
    distributed_window: float = 600.0
    success_after_failures: bool = True
    success_window: float = 600.0
    privileged_account: bool = True
    privileged_window: float = 3600.0
    privileged_groups: tuple[str, ...] = ("sudo", "wheel", "admin", "root")
    # Ransomware signs on this many hosts within the window: it is moving through the
    # network (shares, stolen credentials), not one server's problem.
    ransomware_spreading: bool = True
    spreading_hosts: int = 2
    spreading_window: float = 3600.0


@dataclass(frozen=True)
class SyslogForwardConfig:
    host: str
    port: int
    transport: str = "tcp"
    ca_file: Path | None = None
    verify: bool = True
    server_name: str = ""
    cert_file: Path | None = None
    key_file: Path | None = None
    facility: int = FACILITIES["authpriv"]
    app_name: str = "dcguard"
    min_severity: str = "info"
    udp_max_bytes: int = 8192


@dataclass(frozen=True)
class FileForwardConfig:
    path: Path
    min_severity: str = "info"
    fsync: bool = True


@dataclass(frozen=True)
class ForwardConfig:
    syslog: SyslogForwardConfig | None = None
    file: FileForwardConfig | None = None
    batch_size: int = 500
    timeout_seconds: float = 10.0
    retry_max_seconds: float = 60.0

    @property
    def enabled(self) -> bool:
        return self.syslog is not None or self.file is not None


@dataclass(frozen=True)
class SecurityConfig:
    events: EventsConfig = field(default_factory=EventsConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    forward: ForwardConfig = field(default_factory=ForwardConfig)


def parse_security(root: Table) -> SecurityConfig:
    """Read [events], [detection] and [forward] from the collector config."""
    return SecurityConfig(
        events=_events(root.table("events")),
        detection=_detection(root.table("detection")),
        forward=_forward(root.table("forward")),
    )


def _events(table: Table) -> EventsConfig:
    config = EventsConfig(
        retention_seconds=table.duration("retention", "90d", minimum=3600.0),
        prune_interval_seconds=table.duration("prune_interval", "1h", minimum=1.0),
    )
    table.finish()
    return config


def _detection(table: Table) -> DetectionConfig:
    brute = table.table("brute_force")
    window = brute.duration("window", "120s", minimum=1.0)
    distributed = table.table("distributed_attack")
    success = table.table("success_after_failures")
    privileged = table.table("new_privileged_account")
    spreading = table.table("ransomware_spreading")
    groups = privileged.string_list(
        "groups", list(DetectionConfig.privileged_groups), allow_empty=False
    )
    if any(not group.strip() for group in groups):
        raise privileged.error("groups", tr("group names must not be empty"))
    config = DetectionConfig(
        brute_force=brute.boolean("enabled", True),
        brute_force_threshold=brute.integer("threshold", 8, minimum=2),
        brute_force_window=window,
        brute_force_suppress=brute.duration(
            "suppress", brute.string("window", "120s"), minimum=0.0
        ),
        distributed=distributed.boolean("enabled", True),
        distributed_hosts=distributed.integer("hosts", 3, minimum=2),
        distributed_window=distributed.duration("window", "10m", minimum=1.0),
        success_after_failures=success.boolean("enabled", True),
        success_window=success.duration("window", "10m", minimum=1.0),
        privileged_account=privileged.boolean("enabled", True),
        privileged_window=privileged.duration("window", "1h", minimum=1.0),
        privileged_groups=tuple(groups),
        ransomware_spreading=spreading.boolean("enabled", True),
        spreading_hosts=spreading.integer("hosts", 2, minimum=2),
        spreading_window=spreading.duration("window", "1h", minimum=1.0),
    )
    for sub in (brute, distributed, success, privileged, spreading):
        sub.finish()
    table.finish()
    return config


def _min_severity(table: Table) -> str:
    value = table.string("min_severity", "info")
    try:
        severity_rank(value)
    except ValueError as exc:
        raise table.error("min_severity", str(exc)) from None
    return value


def _forward(table: Table) -> ForwardConfig:
    syslog = _syslog(table.table("syslog")) if table.has("syslog") else None
    file_table = table.table("file")
    file = None
    if table.has("file"):
        file = FileForwardConfig(
            path=file_table.path("path"),
            min_severity=_min_severity(file_table),
            fsync=file_table.boolean("fsync", True),
        )
        file_table.finish()
    config = ForwardConfig(
        syslog=syslog,
        file=file,
        batch_size=table.integer("batch_size", 500, minimum=1),
        timeout_seconds=table.duration("timeout", "10s", minimum=0.1),
        retry_max_seconds=table.duration("retry_max", "60s", minimum=0.1),
    )
    table.finish()
    return config


def _syslog(table: Table) -> SyslogForwardConfig:
    address = table.string("address")
    try:
        host, port = parse_listen_address(address)
    except ValueError as exc:
        raise table.error("address", str(exc)) from None
    table.check("address", port, lambda p: p > 0, lambda: tr("port must not be 0"))
    transport = table.string("transport", "tcp")
    table.check(
        "transport",
        transport,
        lambda t: t in TRANSPORTS,
        lambda: tr(
            "must be one of {choices}, got {value}",
            choices=", ".join(TRANSPORTS),
            value=repr(transport),
        ),
    )
    facility = table.string("facility", "authpriv")
    table.check(
        "facility",
        facility,
        lambda f: f in FACILITIES,
        lambda: tr(
            "must be a syslog facility name such as authpriv or local0, got {value}",
            value=repr(facility),
        ),
    )
    app_name = table.string("app_name", "dcguard")
    table.check(
        "app_name",
        app_name,
        lambda a: len(a) <= 48 and all(33 <= ord(c) <= 126 for c in a),
        lambda: tr("must be 1-48 printable ASCII characters without spaces"),
    )
    ca_file = table.path("ca_file") if table.has("ca_file") else None
    cert_file = table.path("cert_file") if table.has("cert_file") else None
    key_file = table.path("key_file") if table.has("key_file") else None
    tls_keys = [
        k for k in ("ca_file", "cert_file", "key_file", "verify", "server_name") if table.has(k)
    ]
    if tls_keys and transport != "tls":
        raise table.error(tls_keys[0], tr('only applies with transport = "tls"'))
    if (cert_file is None) != (key_file is None):
        raise table.error("cert_file", tr("cert_file and key_file must be given together"))
    for key, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None and not path.is_file():
            raise table.error(key, tr("no such file: {path}", path=path))
    config = SyslogForwardConfig(
        host=host,
        port=port,
        transport=transport,
        ca_file=ca_file,
        verify=table.boolean("verify", True),
        server_name=table.string("server_name", ""),
        cert_file=cert_file,
        key_file=key_file,
        facility=FACILITIES[facility],
        app_name=app_name,
        min_severity=_min_severity(table),
        udp_max_bytes=table.size("udp_max_bytes", 8192, minimum=1024),
    )
    table.check(
        "udp_max_bytes",
        config.udp_max_bytes,
        lambda n: n <= 65000,
        lambda: tr(
            "must be at most {maximum}, got {value}", maximum=65000, value=config.udp_max_bytes
        ),
    )
    table.finish()
    if transport == "tls":
        _check_tls_files(table, config)
    return config


def tls_context(config: SyslogForwardConfig) -> ssl.SSLContext:
    """The client TLS context for the SIEM connection (raises ssl.SSLError/OSError)."""
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file and config.key_file:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    return context


def _check_tls_files(table: Table, config: SyslogForwardConfig) -> None:
    """Load the CA and client certificate now, so a bad file is a config error at start."""
    try:
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        raise table.error(
            "ca_file", tr("cannot load CA certificates: {error}", error=_reason(exc))
        ) from None
    if config.cert_file and config.key_file:
        try:
            context.load_cert_chain(str(config.cert_file), str(config.key_file))
        except (ssl.SSLError, OSError) as exc:
            raise table.error(
                "cert_file",
                tr("cannot load the client certificate and key: {error}", error=_reason(exc)),
            ) from None


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
