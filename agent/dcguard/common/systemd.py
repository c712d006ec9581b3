"""Readiness notification to systemd (Type=notify), with the standard library only.

systemd passes $NOTIFY_SOCKET to a Type=notify service; "READY=1" there says
the service is serving, so `systemctl start` returns only then and units
ordered after it start on a working collector. Outside systemd it is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify"]

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send state (e.g. "READY=1", "STOPPING=1") to $NOTIFY_SOCKET; False if not under systemd.

    A failure to notify is logged, never raised: it must not stop a service
    that otherwise works (systemd then reports the start as timed out).
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", state, exc)
        return False
    return True
