"""Reading smartctl's JSON (smartmontools 7.x) into Disk messages.

Everything here is a pure function of smartctl's output so it is tested on
recorded captures of real disks. Unknown keys are ignored and a key of the
wrong type reads as absent: smartctl's JSON grew over 7.0-7.5 and
controllers fill it in differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from dcguard.agent.sources.storage.config import SmartDevice
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "STANDBY_STATUS",
    "SmartctlOutputError",
    "disk_from_json",
    "is_standby",
    "parse_json",
    "parse_scan",
    "says_asleep",
]

# smartctl exit status bits (smartctl(8) "RETURN VALUES").
EXIT_COMMAND_LINE = 1
EXIT_OPEN_FAILED = 2  # also: "-n standby" found the disk asleep and did not wake it
EXIT_SMART_COMMAND_FAILED = 4
EXIT_DISK_FAILING = 8
STANDBY_STATUS = "standby"
_SLEEP_MESSAGE = re.compile(r"Device is in (\w+) mode")
_SLEEP_MODES = frozenset(
    ("STANDBY", "SLEEP", "IDLE", "IDLE_A", "IDLE_B", "IDLE_C", "STANDBY_Y", "STANDBY_Z", "OFF")
)
_INT64_MAX = 2**63 - 1
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


class SmartctlOutputError(ValueError):
    """smartctl printed something that is not the JSON object it promises."""


def parse_json(text: str) -> dict[str, Any]:
    """The JSON object smartctl printed; truncated or non-object output raises."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SmartctlOutputError(f"smartctl printed invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SmartctlOutputError("smartctl printed JSON that is not an object")
    return data


def _dict(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _int(data: Any, key: str) -> int | None:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _u32(value: int | None) -> int:
    return max(0, min(_U32_MAX, value or 0))


def _u64(value: int | None) -> int:
    return max(0, min(_U64_MAX, value or 0))


def _str(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def messages(data: dict[str, Any]) -> list[str]:
    """smartctl's own messages (why it could not open or read a device)."""
    items = _dict(data, "smartctl").get("messages")
    if not isinstance(items, list):
        return []
    return [_str(item, "string") for item in items if _str(item, "string")]


def exit_status(data: dict[str, Any]) -> int:
    status = _int(_dict(data, "smartctl"), "exit_status")
    return status if status is not None and 0 <= status < 256 else 0


def is_standby(data: dict[str, Any], returncode: int) -> bool:
    """The disk was asleep and "-n standby" left it so (7.5 power_mode, or the 7.0-7.4 message)."""
    if _str(_dict(data, "power_mode"), "name").upper() in _SLEEP_MODES:
        return returncode & EXIT_OPEN_FAILED != 0 or not data.get("smart_status")
    return any(says_asleep(text, returncode) for text in messages(data))


def says_asleep(text: str, returncode: int) -> bool:
    """smartctl's "Device is in STANDBY mode, exit(2)": in a JSON message, or as the plain
    text a smartctl without working --json prints (corpus: smartctl 7.3 on Debian 12)."""
    if returncode & EXIT_OPEN_FAILED == 0:
        return False
    match = _SLEEP_MESSAGE.search(text)
    return match is not None and match.group(1).upper() in _SLEEP_MODES


def parse_scan(text: str) -> list[SmartDevice]:
    """Devices from `smartctl --scan-open --json`, each with the -d type smartctl chose."""
    devices = []
    entries = parse_json(text).get("devices")
    for entry in entries if isinstance(entries, list) else []:
        name = _str(entry, "name")
        if name:
            devices.append(SmartDevice(name, _str(entry, "type")))
    return devices


def _attributes(data: dict[str, Any], wanted: Iterable[int]) -> list[pb.SmartAttribute]:
    wanted_ids = frozenset(wanted)
    table = _dict(data, "ata_smart_attributes").get("table")
    found = []
    for row in table if isinstance(table, list) else []:
        ident = _int(row, "id")
        if ident is None or not 0 < ident < 256:
            continue
        failing = _str(row, "when_failed") == "now"
        if ident not in wanted_ids and not failing:
            continue
        raw = _int(_dict(row, "raw"), "value")
        found.append(
            pb.SmartAttribute(
                id=ident,
                name=_str(row, "name"),
                raw=max(-_INT64_MAX, min(_INT64_MAX, raw or 0)),
                value=_u32(_int(row, "value")),
                worst=_u32(_int(row, "worst")),
                threshold=_u32(_int(row, "thresh")),
                failing_now=failing,
            )
        )
    return found


def disk_from_json(
    device: str, data: dict[str, Any], returncode: int, attributes: Iterable[int]
) -> pb.Disk:
    """A Disk from one `smartctl --json --all` answer that was not a standby skip."""
    info = _dict(data, "device")
    disk = pb.Disk(
        device=device,
        model=_str(data, "model_name") or _str(data, "scsi_model_name"),
        serial=_str(data, "serial_number"),
        protocol=_str(info, "protocol"),
        smartctl_exit_status=returncode & 0xFF,
    )
    status = _dict(data, "smart_status")
    passed = status.get("passed")
    if returncode & (EXIT_COMMAND_LINE | EXIT_OPEN_FAILED) or not isinstance(passed, bool):
        disk.smart_available = False
        reason = "; ".join(messages(data)) or "smartctl reported no SMART health status"
        disk.error = f"{reason} (smartctl exit status {returncode})"[:300]
        return disk
    disk.smart_available = True
    disk.healthy = passed
    temperature = _int(_dict(data, "temperature"), "current")
    if temperature is not None:
        disk.temperature_celsius = float(temperature)
    hours = _int(_dict(data, "power_on_time"), "hours")
    if hours is not None:
        disk.power_on_hours = _u64(hours)
    disk.attributes.extend(_attributes(data, attributes))
    nvme = _dict(data, "nvme_smart_health_information_log")
    if nvme:
        disk.nvme_critical_warning = _u32(_int(nvme, "critical_warning"))
        disk.nvme_media_errors = _u64(_int(nvme, "media_errors"))
        disk.nvme_percentage_used = _u32(_int(nvme, "percentage_used"))
        if temperature is None and _int(nvme, "temperature") is not None:
            disk.temperature_celsius = float(_int(nvme, "temperature") or 0)
        if hours is None:
            disk.power_on_hours = _u64(_int(nvme, "power_on_hours"))
    # Bit 2 (a SMART command failed) with a health status present is often just
    # "based on an Attribute check" behind a RAID controller: the status bits say so.
    return disk
