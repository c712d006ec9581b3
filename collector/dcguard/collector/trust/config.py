"""The collector's [tls] and [limits] tables.

[tls] says where the CA and server certificate live, where agents enroll and
how long their certificates last; [limits] bounds what one request may carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcguard.collector.limits import Limits
from dcguard.common.config import Table, parse_listen_address

__all__ = ["TlsConfig", "parse_limits", "parse_tls"]


@dataclass(frozen=True)
class TlsConfig:
    # None: <data_dir>/tls.
    directory: Path | None
    # TLS without client certificates, for Enroll only: an agent has no
    # certificate before it enrolls, and grpc-python cannot ask for a client
    # certificate without requiring it, so enrollment gets its own port.
    enroll_listen: str
    client_cert_lifetime: float

    def resolve(self, data_dir: Path) -> Path:
        return self.directory if self.directory is not None else data_dir / "tls"


def parse_tls(table: Table) -> TlsConfig:
    directory = table.path("dir") if table.has("dir") else None
    enroll_listen = table.string("enroll_listen", "0.0.0.0:4741")
    try:
        parse_listen_address(enroll_listen)
    except ValueError as exc:
        raise table.error("enroll_listen", str(exc)) from None
    config = TlsConfig(
        directory=directory,
        enroll_listen=enroll_listen,
        # Agents renew after 2/3 of it: keep the last third longer than any
        # outage you expect (days, in production). Seconds work, for tests.
        client_cert_lifetime=table.duration("client_cert_lifetime", "90d", minimum=1.0),
    )
    table.finish()
    return config


def parse_limits(table: Table) -> Limits:
    defaults = Limits()
    limits = Limits(
        max_reports_per_batch=table.integer(
            "max_reports_per_batch", defaults.max_reports_per_batch, minimum=1
        ),
        max_entries=table.integer("max_entries", defaults.max_entries, minimum=1),
        max_filesystems=table.integer("max_filesystems", defaults.max_filesystems, minimum=1),
        max_sources=table.integer("max_sources", defaults.max_sources, minimum=1),
        max_events_per_report=table.integer(
            "max_events_per_report", defaults.max_events_per_report, minimum=0
        ),
        max_string=table.size("max_string_bytes", defaults.max_string, minimum=64),
        max_age_seconds=table.duration("max_report_age", "400d", minimum=60.0),
        max_future_seconds=table.duration("max_clock_ahead", "1h", minimum=1.0),
        rate_per_second=table.number(
            "rate_limit_per_second", defaults.rate_per_second, minimum=0.0
        ),
        rate_burst=table.integer("rate_limit_burst", defaults.rate_burst, minimum=1),
    )
    table.finish()
    return limits
