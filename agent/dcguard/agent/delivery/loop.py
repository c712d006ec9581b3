"""The delivery thread: sends the spool's oldest reports in batches until it is empty.

Runs beside the report loop, so a slow or absent collector never delays a
cycle. Each batch is bounded in reports and bytes and gzip-compressed; the
collector's acknowledgement removes the batch from the spool. Failures back
off exponentially with jitter (capped at 60 s); the stop event cuts any wait
short. Reports go strictly oldest first: the collector stores each sequence
once and treats anything at or below its highest as a duplicate, so sending
a fresh report ahead of the backlog would turn the backlog into duplicates.
Once the spool is empty the channel is closed until the next report, so
grpc's threads do not wake the idle agent (docs/performance.md, "Agent"),
unless [collector] keep_connection asks to keep it.

A batch the collector refuses for good because of its content
(INVALID_ARGUMENT) is halved until the one bad report is isolated; only that
report is dropped, counted (status: rejected) and logged. If several reports
in a row are refused with none accepted, the refusal is about the agent, not
a report, and nothing more is dropped. Refusals about who we are
(UNAUTHENTICATED, PERMISSION_DENIED) drop nothing: they back off and the
spool keeps every report until the agent is allowed in again.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Callable

import grpc

from dcguard.agent.delivery.config import SpoolConfig
from dcguard.agent.delivery.sender import DeliveryError, PermanentError, Sender
from dcguard.agent.delivery.spool import Spool
from dcguard.agent.state_dir import atomic_write

__all__ = ["Backoff", "Delivery"]

log = logging.getLogger(__name__)

# Refusals about a report's content: retrying the same bytes can never succeed.
_CONTENT_REFUSED = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE})
# "Too big / too much": a smaller batch may pass.
_SHRINK = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED})
STATUS_FILE = "delivery.json"
# Refused reports dropped with nothing accepted in between before we stop dropping.
MAX_REFUSED_IN_A_ROW = 3
_STATUS_EVERY = 60.0


class Backoff:
    """Exponential backoff with jitter: first ~initial, doubling, capped at maximum."""

    def __init__(
        self, initial: float = 1.0, maximum: float = 60.0, rng: Callable[[], float] = random.random
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt: uniformly in [d/2, d], d = initial·2^n ≤ max."""
        ceiling = min(self._maximum, self._initial * 2 ** min(self.failures, 32))
        self.failures += 1
        return float(ceiling / 2 + self._rng() * ceiling / 2)

    def reset(self) -> None:
        self.failures = 0


class Delivery(threading.Thread):
    """Drains the spool to the collector; call notify() after each append."""

    def __init__(
        self,
        spool: Spool,
        sender: Sender,
        config: SpoolConfig,
        stop: threading.Event,
        status_path: Path | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name="delivery", daemon=True)
        self._spool = spool
        self._sender = sender
        self._config = config
        self._stopping = stop
        self._wake = threading.Event()
        self._status_path = status_path
        self._backoff = backoff or Backoff()
        self._limit = config.batch_max_reports
        self._failing: str | None = None
        self._failing_code: grpc.StatusCode | None = None
        self._status_written = 0.0
        self._status_stale = False  # the last write failed: delivery.json is out of date
        self._last_success = 0.0
        self._refused_in_a_row = 0

    def notify(self) -> None:
        """New report spooled (or stop requested): look at the spool now."""
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                progressed = self._deliver_once()
            except Exception:  # the thread must outlive any bug in one batch
                log.exception("delivery: unexpected error; retrying after a pause")
                progressed = None
            if progressed is None:
                self._stopping.wait(self._backoff.next_delay())
            elif not progressed:
                # Idle until the next report: an open channel keeps grpc's EventEngine
                # threads waking ~10-15 times a second; closing it ends them. Reconnecting
                # costs one handshake per report, far less (docs/performance.md).
                self._sender.idle()
                self._wake.wait()

    def _deliver_once(self) -> bool | None:
        """Send one batch. True: progress; False: spool empty; None: failed, back off."""
        batch = self._spool.peek(self._limit, self._config.batch_max_bytes)
        try:
            if not batch:
                return False
            batch = self._readable_prefix(batch)
            return self._send(batch) if batch else True
        finally:
            self._spool.release()

    def _send(self, batch: list[tuple[int, bytes]]) -> bool | None:
        try:
            acked = self._sender.submit_serialized(
                [payload for _, payload in batch], self._spool.acked_sequence
            )
        except DeliveryError as exc:
            return self._not_taken(batch, exc)
        first, last = batch[0][0], batch[-1][0]
        if acked < first:
            self._failed(
                DeliveryError(
                    None,
                    f"collector {self._sender.address} acknowledged "
                    f"{acked}, below the batch {first}-{last}",
                )
            )
            return None
        self._spool.ack(acked)
        self._limit = min(self._config.batch_max_reports, self._limit * 2)
        self._succeeded(len(batch))
        return True

    def _not_taken(self, batch: list[tuple[int, bytes]], exc: DeliveryError) -> bool | None:
        """Decide what a refusal means for the batch: wait, shrink, isolate or back off."""
        if isinstance(exc, PermanentError) and exc.code in _CONTENT_REFUSED:
            return self._refused(batch, exc)
        if exc.retry_after > 0:
            # Throttled: the same batch is welcome after the wait the collector
            # named. Shrinking would mean more calls, and an escalating backoff
            # would stall the backlog for no reason.
            self._stopping.wait(exc.retry_after)
            return True
        if exc.code in _SHRINK:
            if len(batch) > 1:
                self._limit = max(1, len(batch) // 2)
            else:
                # One report too large for the collector, and no "come back
                # later": retrying it forever would wedge the spool behind it.
                return self._refused(batch, exc)
        self._failed(exc)
        return None

    def _readable_prefix(self, batch: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """The batch up to the first record that no longer reads back (dropped if first)."""
        for index, (sequence, payload) in enumerate(batch):
            if payload:
                continue
            if index == 0:
                self._spool.reject(sequence)
                log.error(
                    "spool record %d no longer reads back from disk; dropped it "
                    "(counted as rejected)",
                    sequence,
                )
            return batch[:index]
        return batch

    def _refused(self, batch: list[tuple[int, bytes]], exc: DeliveryError) -> bool | None:
        """Halve the batch until the refused report is alone, then drop only it.

        If the collector refuses report after report with nothing accepted in
        between, the refusal is about the agent rather than one report (a
        collector rule this agent breaks): keep them all and back off instead.
        """
        if len(batch) > 1:
            self._limit = max(1, len(batch) // 2)
            return True
        if self._refused_in_a_row >= MAX_REFUSED_IN_A_ROW:
            self._failed(
                DeliveryError(
                    exc.code,
                    f"{exc}; the collector refuses every report, "
                    f"so they stay spooled until it takes them",
                )
            )
            return None
        sequence = batch[0][0]
        self._spool.reject(sequence)
        self._refused_in_a_row += 1
        log.error(
            "collector refused report %d for good and it was dropped (%d refused in total): %s",
            sequence,
            self._spool.stats().rejected_total,
            exc,
        )
        self._limit = self._config.batch_max_reports
        return True

    def _failed(self, exc: DeliveryError) -> None:
        message = str(exc)
        # Once per episode, not once per attempt; but again when the cause
        # changes (a collector that comes back and refuses us is news).
        if self._failing is None or exc.code != self._failing_code:
            log.error("delivery failing (reports stay spooled): %s", message)
            self._failing, self._failing_code = message, exc.code
            self._write_status(force=True)
        else:
            self._failing = message
            self._write_status()

    def _succeeded(self, count: int) -> None:
        self._backoff.reset()
        self._refused_in_a_row = 0
        self._last_success = time.time()
        if self._failing is not None:
            log.info("delivery recovered via %s", self._sender.address)
            self._failing = None
            self._write_status(force=True)
        else:
            self._write_status()
        log.debug("delivered %d reports", count)

    def _write_status(self, force: bool = False) -> None:
        """What `status` shows about delivery: written on change, else at most once a minute."""
        now = time.monotonic()
        if self._status_path is None or (
            not force and not self._status_stale and now - self._status_written < _STATUS_EVERY
        ):
            return
        status = {
            "address": self._sender.address,
            "failing": self._failing or "",
            "last_success": self._last_success,
            "written": time.time(),
        }
        try:
            atomic_write(self._status_path, json.dumps(status, sort_keys=True).encode())
        except OSError as exc:
            # A full state directory: what is on disk is now out of date (it may
            # say "failing" after delivery recovered), so try again next time
            # rather than a minute later.
            log.debug("cannot write %s: %s", self._status_path, exc)
            self._status_stale = True
            return
        self._status_written = now
        self._status_stale = False
