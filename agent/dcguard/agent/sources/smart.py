"""smart: disk health from smartctl, read in a background thread, never waking a sleeping disk.

Every [storage] smart_interval (default 10m) the thread discovers disks
(`smartctl --scan-open --json`, or the smart_devices list) and reads each
with `smartctl --json --all -n standby`. A disk found asleep is not woken
(smartctl_exporter #61): it keeps its last read values with in_standby set
and read_at saying when they were read. Last values survive restarts in
state_dir/smart-last.json. collect() only copies the latest results.

smartctl missing or not permitted is one clear SourceStatus error, logged
once, retried every interval: not an error loop.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path

from dcguard.agent.sources import Source, SourceContext, register
from dcguard.agent.sources.storage.config import SmartDevice, StorageConfig, parse_storage
from dcguard.agent.sources.storage.poller import Poller
from dcguard.agent.sources.storage.smartctl import (
    SmartctlOutputError,
    disk_from_json,
    exit_status,
    is_standby,
    parse_json,
    parse_scan,
    says_asleep,
)
from dcguard.agent.sources.storage.tools import (
    ToolError,
    ToolUnavailableError,
    error_line,
    run_tool,
)
from dcguard.agent.state_dir import atomic_write
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

__all__ = ["SmartReader", "SmartSource", "SmartUnavailableError"]

log = logging.getLogger(__name__)


class SmartUnavailableError(RuntimeError):
    """smartctl cannot be run at all: reported as this source's status."""


class SmartReader:
    """Reads every disk once per call to read_all(); holds the latest Disk per device."""

    def __init__(self, config: StorageConfig, cache_file: Path | None) -> None:
        self._config = config
        self._cache_file = cache_file
        self._lock = threading.Lock()
        self._disks: dict[str, pb.Disk] = {}
        self._unavailable = ""
        self._loaded = False

    def snapshot(self) -> tuple[list[pb.Disk], str]:
        """Copies of the latest Disk messages, and the why-unavailable text ("" if fine)."""
        with self._lock:
            disks = [pb.Disk.FromString(d.SerializeToString()) for d in self._disks.values()]
            return disks, self._unavailable

    def _run(self, *args: str) -> tuple[int, str]:
        result = run_tool([self._config.smartctl, *args], self._config.smart_timeout)
        if result.returncode & 1 and not result.stdout.strip():
            # Bit 0: smartctl rejected its command line (too old for --json?).
            raise ToolError(f"smartctl rejected its arguments: {error_line(result.stderr)}")
        return result.returncode, result.stdout

    def _devices(self) -> list[SmartDevice]:
        if self._config.smart_devices:
            return list(self._config.smart_devices)
        _, out = self._run("--scan-open", "--json")
        try:
            return parse_scan(out)
        except SmartctlOutputError as exc:
            raise ToolError(f"smartctl --scan-open: {exc}") from None

    def read_all(self) -> float:
        """One round over every disk; returns the delay until the next round."""
        self._load_cache()
        try:
            devices = self._devices()
        except ToolError as exc:
            self._set_unavailable(str(exc))
            return self._config.smart_interval
        for device in devices:
            try:
                disk = self._read(device)
            except ToolUnavailableError as exc:
                self._set_unavailable(str(exc))
                return self._config.smart_interval
            except ToolError as exc:
                disk = self._previous_or_new(device.path)
                disk.error = str(exc)
            with self._lock:
                self._disks[device.path] = disk
        with self._lock:
            for gone in set(self._disks) - {d.path for d in devices}:
                del self._disks[gone]
        self._set_unavailable("")
        self._save_cache()
        return self._config.smart_interval

    def _previous_or_new(self, path: str) -> pb.Disk:
        with self._lock:
            previous = self._disks.get(path)
        disk = pb.Disk(device=path)
        if previous is not None:
            disk.CopyFrom(previous)
            disk.ClearField("error")
        return disk

    def _read(self, device: SmartDevice) -> pb.Disk:
        args = ["--json", "--all", "-n", "standby"]
        if device.type:
            args += ["-d", device.type]
        returncode, out = self._run(*args, device.path)
        try:
            data = parse_json(out)
        except SmartctlOutputError as exc:
            if says_asleep(out, returncode):
                return self._asleep(device.path)
            disk = self._previous_or_new(device.path)
            disk.smartctl_exit_status = returncode & 0xFF
            disk.error = f"{exc} (smartctl exit status {returncode})"
            return disk
        returncode = returncode or exit_status(data)
        if is_standby(data, returncode):
            return self._asleep(device.path)
        disk = disk_from_json(device.path, data, returncode, self._config.smart_attributes)
        disk.read_at.GetCurrentTime()
        return disk

    def _asleep(self, path: str) -> pb.Disk:
        """The last values read (none if the disk slept since the agent started), marked asleep."""
        disk = self._previous_or_new(path)
        disk.in_standby = True
        return disk

    def _set_unavailable(self, message: str) -> None:
        with self._lock:
            changed = message != self._unavailable
            self._unavailable = message
        if changed and message:
            log.warning("smart: %s; retrying every %gs", message, self._config.smart_interval)
        elif changed:
            log.info("smart: smartctl works again")

    def _load_cache(self) -> None:
        if self._loaded or self._cache_file is None:
            return
        self._loaded = True
        try:
            entries = json.loads(self._cache_file.read_text())
            disks = {
                path: pb.Disk.FromString(base64.b64decode(blob)) for path, blob in entries.items()
            }
        except FileNotFoundError:
            return
        except Exception as exc:  # noqa: BLE001 - a bad cache only costs the last values
            log.warning("smart: ignoring unreadable %s: %s", self._cache_file, exc)
            return
        with self._lock:
            for path, disk in disks.items():
                self._disks.setdefault(path, disk)

    def _save_cache(self) -> None:
        if self._cache_file is None:
            return
        with self._lock:
            entries = {
                path: base64.b64encode(disk.SerializeToString()).decode()
                for path, disk in self._disks.items()
                if disk.HasField("read_at")
            }
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._cache_file, json.dumps(entries).encode())
        except OSError as exc:
            log.warning("smart: cannot save %s: %s", self._cache_file, exc)


class SmartSource:
    name = "smart"

    def __init__(self, reader: SmartReader) -> None:
        self._reader = reader
        self._poller = Poller("smart", reader.read_all)

    def start(self) -> bool:
        """Start the background reader (the agent does before its first report); True."""
        self._poller.start()
        return True

    def collect(self, report: pb.Report) -> None:
        self._poller.start()
        if not self._poller.rounds:
            # Nothing is known yet: claiming success here made the first report
            # say smart works on a host without smartctl.
            raise SmartUnavailableError("the first smartctl run has not finished yet")
        disks, unavailable = self._reader.snapshot()
        if unavailable:
            raise SmartUnavailableError(unavailable)
        report.disks.extend(disks)

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """For tests and one-shot commands: wait until the thread finished n rounds."""
        return self._poller.wait_rounds(rounds, timeout)

    def wake(self) -> None:
        self._poller.wake()

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self._poller.close()


@register("smart", default_enabled=True)
def create(config: Table, context: SourceContext) -> Source:
    return SmartSource(
        SmartReader(parse_storage(config, context), context.state_dir / "smart-last.json")
    )
