"""Forwarding stored events to a SIEM, off the ingest path, without losing any.

Each destination has a thread that reads events from the database after its
persisted cursor (the last event id it delivered), writes them, and only
then advances the cursor. Ingestion never waits for it: a slow or absent
SIEM only makes the backlog in the database grow, and the thread retries
with backoff and resumes where it stopped, also after a restart. Delivery is
at least once: a crash between a write and the cursor update resends that
batch, and event.id lets the SIEM drop the repeat.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import threading
from typing import Protocol

from dcguard.collector.events import StoredEvent, severity_rank
from dcguard.collector.security.config import (
    FileForwardConfig,
    SyslogForwardConfig,
    tls_context,
)
from dcguard.collector.security.formats import ecs_json, syslog_frame, syslog_message
from dcguard.collector.store import Database, EventStore, StoreError, open_event_store

__all__ = ["Destination", "FileDestination", "Forwarder", "SyslogDestination"]

log = logging.getLogger(__name__)


class Destination(Protocol):
    name: str
    min_rank: int

    def send(self, events: list[StoredEvent]) -> None:
        """Deliver every event or raise OSError (nothing is then counted as delivered)."""

    def interrupt(self) -> None:
        """Make a send blocked on a stalled peer fail now (called from another thread)."""

    def close(self) -> None: ...


class FileDestination:
    """ECS JSON lines appended to a file; reopened for each batch so logrotate can move it."""

    name = "file"

    def __init__(self, config: FileForwardConfig) -> None:
        self._config = config
        self.min_rank = severity_rank(config.min_severity)

    def send(self, events: list[StoredEvent]) -> None:
        data = "".join(ecs_json(event) + "\n" for event in events).encode("ascii")
        with open(self._config.path, "a+b") as handle:
            # A crash in the middle of a write leaves a partial last line:
            # end it, so the next event is not glued onto it.
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    data = b"\n" + data
            handle.write(data)
            handle.flush()
            if self._config.fsync:
                os.fsync(handle.fileno())

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


class SyslogDestination:
    """RFC 5424 over TCP or TLS (octet-counted, RFC 6587/5425) or UDP (one per datagram)."""

    name = "syslog"

    def __init__(self, config: SyslogForwardConfig, timeout: float) -> None:
        self._config = config
        self._timeout = timeout
        self.min_rank = severity_rank(config.min_severity)
        self._sock: socket.socket | None = None
        self._tls = tls_context(config) if config.transport == "tls" else None

    def _connect(self) -> socket.socket:
        config = self._config
        if config.transport == "udp":
            info = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.settimeout(self._timeout)
            sock.connect(info[4])
            return sock
        sock = socket.create_connection((config.host, config.port), timeout=self._timeout)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(
                    sock, server_hostname=config.server_name or config.host
                )
            except (OSError, ssl.SSLError):
                sock.close()
                raise
        return sock

    def send(self, events: list[StoredEvent]) -> None:
        config = self._config
        if self._sock is not None and config.transport != "udp" and _peer_closed(self._sock):
            self.close()  # the SIEM closed on us while we were idle: reconnect
        if self._sock is None:
            self._sock = self._connect()
        try:
            if config.transport == "udp":
                for event in events:
                    self._sock.send(
                        syslog_message(
                            event, config.facility, config.app_name, config.udp_max_bytes
                        )
                    )
                return
            self._sock.sendall(
                b"".join(
                    syslog_frame(syslog_message(event, config.facility, config.app_name))
                    for event in events
                )
            )
            # A peer that went away during the write shows up as EOF/RST now;
            # treat the batch as not delivered so it is sent again.
            if _peer_closed(self._sock):
                raise ConnectionResetError("the syslog receiver closed the connection")
        except OSError:
            self.close()
            raise

    def interrupt(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _peer_closed(sock: socket.socket) -> bool:
    """True if the receiver has closed or reset the connection (it never sends us data)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return sock.recv(1) == b""
        finally:
            sock.settimeout(timeout)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except (OSError, ValueError):
        return True


class ForwardCounters(Protocol):
    def forwarded(self, destination: str, count: int) -> None: ...
    def failed(self, destination: str, count: int) -> None: ...
    def backlog(self, destination: str, count: int) -> None: ...


class Forwarder:
    """One destination's thread: read after the cursor, send, advance; back off on failure."""

    def __init__(
        self,
        database: Database,
        destination: Destination,
        counters: ForwardCounters,
        batch_size: int = 500,
        retry_max: float = 60.0,
        poll: float = 0.5,
    ) -> None:
        self._database = database
        self._destination = destination
        self._counters = counters
        self._batch_size = batch_size
        self._retry_max = retry_max
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"forward-{destination.name}"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._destination.interrupt()
        self._thread.join(15)
        self._destination.close()

    def _run(self) -> None:
        name = self._destination.name
        events = open_event_store(self._database)
        backoff = 0.0
        failing = False
        claimed = False
        cursor = 0
        try:
            while not self._stop.is_set():
                try:
                    # Collectors sharing a store forward each destination from one of
                    # them at a time; the one that takes over goes on from the cursor.
                    if not events.claim_destination(name):
                        claimed = False
                        self._stop.wait(self._poll * 4)
                        continue
                    if not claimed:
                        cursor, claimed = events.load_cursor(name), True
                    sent = self._step(events, cursor)
                except (OSError, ssl.SSLError) as exc:
                    backoff = min(self._retry_max, max(0.5, backoff * 2))
                    if not failing:
                        log.warning(
                            "forwarding to %s failed, retrying with backoff up to %gs: %s",
                            name,
                            self._retry_max,
                            exc,
                        )
                    failing = True
                    self._stop.wait(backoff)
                    continue
                except StoreError as exc:
                    log.warning("forwarder %s cannot read its events: %s", name, exc)
                    self._stop.wait(self._poll * 4)
                    continue
                except Exception:  # the thread must outlive any bug (logged with its traceback)
                    log.exception("forwarder %s failed unexpectedly; retrying", name)
                    self._stop.wait(self._retry_max)
                    continue
                if failing:
                    log.info("forwarding to %s works again", name)
                    failing, backoff = False, 0.0
                if sent is None:
                    self._stop.wait(self._poll)
                else:
                    cursor = sent
        finally:
            events.close()

    def _save(self, events: EventStore, last_id: int) -> None:
        """Persist the cursor; if the database is busy, the next batch's save catches up.

        Sending goes on from the in-memory cursor either way: a crash before
        a later save only resends (at least once), it never skips.
        """
        try:
            events.save_cursor(self._destination.name, last_id)
        except StoreError as exc:
            log.warning("forwarder %s cannot save its cursor yet: %s", self._destination.name, exc)

    def _step(self, store: EventStore, cursor: int) -> int | None:
        """Send one batch after cursor; the new cursor, or None when there was nothing."""
        name = self._destination.name
        events = store.events_after(cursor, self._batch_size)
        if not events:
            self._counters.backlog(name, 0)
            return None
        wanted = [e for e in events if severity_rank(e.severity) >= self._destination.min_rank]
        if wanted:
            try:
                self._destination.send(wanted)
            except (OSError, ssl.SSLError):
                self._counters.failed(name, len(wanted))
                raise
            self._counters.forwarded(name, len(wanted))
        self._save(store, events[-1].id)
        self._counters.backlog(name, max(0, store.newest_event_id() - events[-1].id))
        return events[-1].id
