"""ports: a listening socket that appears or vanishes (port, protocol, address, process).

A background thread lists listening sockets every `interval` (the kernel's
sock_diag, or /proc/net where that is refused; /proc/*/fd only to find the
owner of a socket not seen before: slow on busy hosts, so never inside
collect()). The first scan is the baseline; the baseline on disk advances
only in commit(), so a restart neither repeats nor loses a change.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from dcguard.agent.sources import SourceContext, register
from dcguard.agent.sources.security.baseline import BaselineScanSource
from dcguard.agent.sources.security.events import (
    SecurityCounters,
    SecuritySettings,
    bare_ip,
    counters_for,
    make_event,
    security_settings,
)
from dcguard.agent.sources.security.listeners import SocketOwners, read_listeners
from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.v1 import collector_pb2 as pb

__all__ = ["PortsSource", "listening_sockets", "ports_factory"]

log = logging.getLogger(__name__)

PROTOCOLS = ("tcp", "udp")
Listener = dict[str, Any]  # {"protocol", "address", "port", "process"}
Listeners = dict[str, Listener]


def listening_sockets(
    protocols: tuple[str, ...], owners: SocketOwners | None = None, proc: Path = Path("/proc")
) -> Listeners:
    """Listening TCP sockets and unconnected bound UDP sockets, keyed by proto/address/port.

    owners remembers who holds each socket between calls (see listeners.py).
    """
    sockets = list(read_listeners(protocols, proc))
    names = (owners or SocketOwners(proc)).names({s.inode for s in sockets})
    return {
        f"{s.protocol}/{s.address}/{s.port}": {
            "protocol": s.protocol,
            "address": s.address,
            "port": s.port,
            "process": names[s.inode],
        }
        for s in sockets
    }


class PortsSource(BaselineScanSource[Listeners]):
    """Reports listening sockets that appear or vanish between scans."""

    name = "ports"

    def __init__(
        self,
        *,
        interval: float,
        protocols: tuple[str, ...],
        settings: SecuritySettings,
        state_file: Path,
        counters: SecurityCounters,
        clock: Callable[[], float] = time.time,
        proc: Path = Path("/proc"),
    ) -> None:
        super().__init__(
            interval=interval,
            settings=settings,
            state_file=state_file,
            counters=counters,
            clock=clock,
        )
        self._protocols = protocols
        self._proc = proc
        self._owners = SocketOwners(proc)

    def _load(self) -> Listeners | None:
        try:
            data = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning(
                "ports: baseline %s is unreadable (%s); taking a new one", self._state_file, exc
            )
            return None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            return None
        return data

    def _scan(self, stop: threading.Event) -> None:
        if self._queue.room() == 0:
            return
        now = self._clock()
        current = listening_sockets(self._protocols, self._owners, self._proc)
        previous = self._working
        events: list[pb.SecurityEvent] = []
        if previous is not None:
            for key in sorted(current.keys() - previous.keys()):
                events.append(self._event("port_opened", current[key], now))
            for key in sorted(previous.keys() - current.keys()):
                events.append(self._event("port_closed", previous[key], now))
        if events and len(events) > self._queue.room() and len(self._queue) > 0:
            return
        self._working = current
        self._queue.push_scan(events, previous, current)

    def _event(self, type_: str, listener: Listener, when: float) -> pb.SecurityEvent:
        address = str(listener.get("address", ""))
        ip = bare_ip(address)
        loopback = ip in ("127.0.0.1", "::1") or ip.startswith("127.")
        severity = "info" if type_ == "port_closed" else ("low" if loopback else "medium")
        port = int(listener.get("port", 0))
        protocol = str(listener.get("protocol", ""))
        process = str(listener.get("process", ""))
        return make_event(
            self.name,
            type_,
            severity,
            when,
            process=process,
            raw=f"{type_} {protocol} {address}:{port} {process}".strip(),
            raw_max_bytes=self._settings.raw_max_bytes,
            details={"listen_address": address},
            port=port,
            protocol=protocol,
        )


@register("ports", default_enabled=True)
def ports_factory(root: Table, context: SourceContext) -> PortsSource:
    """Read [security.ports]; no I/O here (check-config runs this too)."""
    settings = security_settings(root)
    table = root.table("security").table("ports")
    protocols = table.string_list("protocols", list(PROTOCOLS), allow_empty=False)
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise table.error(
                "protocols", tr('must hold "tcp" and/or "udp", got {value}', value=repr(protocol))
            )
    source = PortsSource(
        interval=table.duration("interval", "30s", minimum=0.05),
        protocols=tuple(protocols),
        settings=settings,
        state_file=context.state_dir / "ports-baseline.json",
        counters=counters_for(context.state_dir),
        proc=context.proc_root,
    )
    table.finish()
    return source
