"""The [storage] table, shared by the smart, mdraid and io_errors sources.

Each of those sources parses the whole table (and rejects unknown keys), so
a typo is caught whichever of them is enabled; each then uses its own keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcguard.agent.sources import SourceContext
from dcguard.common.config import Table
from dcguard.common.i18n import tr

__all__ = ["DEFAULT_SMART_ATTRIBUTES", "SmartDevice", "StorageConfig", "parse_storage"]

# 5 reallocated, 187 reported uncorrectable, 188 command timeout, 197 pending,
# 198 offline uncorrectable (Backblaze), plus 9 power-on hours, 10 spin retries,
# 194 temperature, 196 reallocation events and 199 UDMA CRC errors (cabling).
DEFAULT_SMART_ATTRIBUTES = (5, 9, 10, 187, 188, 194, 196, 197, 198, 199)


@dataclass(frozen=True)
class SmartDevice:
    """A disk to read: its path and the smartctl -d type ("" lets smartctl guess)."""

    path: str
    type: str = ""


@dataclass(frozen=True)
class StorageConfig:
    smartctl: str
    smart_interval: float
    smart_timeout: float
    smart_devices: tuple[SmartDevice, ...]
    smart_attributes: frozenset[int]
    mdstat: Path
    kernel_log: str
    journalctl: str
    journal_directory: str
    journal_timeout: float
    sys_root: Path
    mounts_file: Path
    max_read_bytes: int


def _devices(table: Table) -> tuple[SmartDevice, ...]:
    devices = []
    for entry in table.string_list("smart_devices", []):
        parts = entry.split()
        if len(parts) not in (1, 2) or not parts[0].startswith("/"):
            raise table.error(
                "smart_devices",
                tr(
                    'entries are "/dev/sdX" or "/dev/sdX TYPE" (TYPE as for smartctl -d), got '
                    "{value}",
                    value=repr(entry),
                ),
            )
        devices.append(SmartDevice(parts[0], parts[1] if len(parts) == 2 else ""))
    return tuple(devices)


def _attributes(table: Table) -> frozenset[int]:
    values = table.raw("smart_attributes", list(DEFAULT_SMART_ATTRIBUTES))
    if not isinstance(values, list):
        raise table.error("smart_attributes", tr("must be a list of SMART attribute ids 1-255"))
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
            raise table.error(
                "smart_attributes",
                tr("must be a list of SMART attribute ids 1-255, found {value}", value=repr(value)),
            )
    return frozenset(values)


def parse_storage(config: Table, context: SourceContext) -> StorageConfig:
    """Read and check [storage]; every problem is a one-line ConfigError naming the key."""
    table = config.table("storage")
    kernel_log = table.string("kernel_log", "journal")
    if kernel_log != "journal" and not kernel_log.startswith("/"):
        raise table.error(
            "kernel_log",
            tr(
                'must be "journal" or an absolute file path such as "/var/log/kern.log", got '
                "{value}",
                value=repr(kernel_log),
            ),
        )
    result = StorageConfig(
        smartctl=table.string("smartctl", "smartctl"),
        smart_interval=table.duration("smart_interval", "10m", minimum=1.0),
        smart_timeout=table.duration("smart_timeout", "30s", minimum=0.1),
        smart_devices=_devices(table),
        smart_attributes=_attributes(table),
        mdstat=table.path("mdstat", str(context.proc_root / "mdstat")),
        kernel_log=kernel_log,
        journalctl=table.string("journalctl", "journalctl"),
        journal_directory=table.string("journal_directory", "", allow_empty=True),
        journal_timeout=table.duration("journal_timeout", "20s", minimum=0.1),
        sys_root=table.path("sys_root", str(context.sys_root)),
        mounts_file=table.path("mounts_file", str(context.proc_root / "self/mounts")),
        max_read_bytes=table.size("kernel_log_max_read_bytes", 8 * 2**20, minimum=4096),
    )
    table.finish()
    return result
