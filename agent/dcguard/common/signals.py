"""Turning SIGTERM and SIGINT into a threading.Event, without a lock in the handler.

A Python signal handler runs in the main thread between two bytecodes, even
inside another handler. One that calls Event.set() takes the Event's lock;
a second signal arriving while the first handler holds it (systemd and a
terminal, or a process group signalled twice) runs set() again on the
same thread and waits for that lock forever: a collector hung like this on
stop. Here the handler does nothing in Python; the C-level wakeup fd
carries the signal number to a thread, which sets the event.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["stop_on_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: threading.Event) -> None:
    """Set stop when SIGTERM or SIGINT arrives; call once, from the main thread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _ignore)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_relay, args=(read_end, stop), name="signals", daemon=True).start()


def _ignore(signum: int, frame: object) -> None:
    """Installed so the signal is caught (and written to the wakeup fd), not fatal."""


def _relay(read_end: int, stop: threading.Event) -> None:
    wanted = {int(signum) for signum in STOP_SIGNALS}
    while True:
        try:
            data = os.read(read_end, 64)
        except OSError:
            return
        if not data:
            return
        if wanted.intersection(data):
            stop.set()
