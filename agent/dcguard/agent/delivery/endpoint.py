"""The [collector] table: where reports are delivered, and how the connection is made."""

from __future__ import annotations

from dataclasses import dataclass

from dcguard.common.config import Table, parse_listen_address

__all__ = ["CollectorConfig", "parse_collector"]


@dataclass(frozen=True)
class CollectorConfig:
    addresses: tuple[str, ...]
    insecure: bool
    timeout: float
    # False (the default): the channel is closed whenever the spool is empty, so
    # grpc's threads stop waking the idle agent, at one mTLS handshake per report
    # on both sides. True keeps it open: for a collector whose CPU is the limit.
    keep_connection: bool = False


def parse_collector(table: Table) -> CollectorConfig:
    """Addresses are tried in order (failover); each must be host:port."""
    addresses = table.string_list("addresses", allow_empty=False)
    for address in addresses:
        try:
            parse_listen_address(address)
        except ValueError as exc:
            raise table.error("addresses", str(exc)) from None
    config = CollectorConfig(
        addresses=tuple(addresses),
        insecure=table.boolean("insecure", False),
        timeout=table.duration("timeout", "10s", minimum=0.01),
        keep_connection=table.boolean("keep_connection", False),
    )
    table.finish()
    return config
