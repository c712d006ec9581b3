"""The store's interface: what the rest of the collector may ask of the database, by concern.

Nothing outside the store writes SQL or holds a database connection: it
holds one of these. A storage engine is a package that implements them
(store/sqlite/, store/postgres/), mostly by handing its Dialect to the
shared SQL of store/sql/; the engine is chosen in store/__init__.py, with
no edits elsewhere. Every method raises StoreError
when the database fails; no engine's own exception leaves the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from dcguard.collector.events import StoredEvent
from dcguard.collector.identity import PeerIdentity
from dcguard.collector.store.model import (
    AgentRecord,
    ApplyResult,
    CertificateRecord,
    StoreError,
    StoreJob,
    TokenRecord,
)
from dcguard.v1 import collector_pb2 as pb

__all__ = [
    "EventStore",
    "EventTransaction",
    "HistoryTransaction",
    "RegistryStore",
    "ReportHook",
    "ReportStore",
    "Transaction",
]


class EventTransaction(Protocol):
    """Security events in the storing transaction: EventHook's writes, the detections' windows.

    Failed logins are those of FAILURES (ssh_login_failed, ssh_invalid_user)
    stored from agents (never detections); times are event times.
    """

    def insert_event(self, event: StoredEvent) -> StoredEvent:
        """Store and count one event; returns it with its id."""

    def failure_times_before(
        self,
        source_address: str,
        host: str,
        type_: str,
        exclude_id: int,
        start: float,
        end: float,
        limit: int,
    ) -> list[float]:
        """Times of this type's failures in [start, end] but exclude_id, newest first."""

    def failure_times_after(
        self,
        source_address: str,
        host: str,
        type_: str,
        exclude_id: int,
        after: float,
        until: float,
        limit: int,
    ) -> list[float]:
        """Times of this type's failures in (after, until] but exclude_id, oldest first."""

    def count_failures(
        self, source_address: str, host: str, type_: str, start: float, end: float
    ) -> int:
        """How many failures of this type lie in [start, end]."""

    def latest_failure(
        self, source_address: str, host: str, start: float, end: float
    ) -> float | None:
        """The newest failure's time in [start, end], of either type."""

    def earliest_failure(
        self, source_address: str, host: str, start: float, end: float
    ) -> float | None:
        """The oldest failure's time in [start, end], of either type."""

    def next_failed_host(self, source_address: str, after_host: str) -> str | None:
        """The first host (in name order) after after_host this source ever failed on."""

    def latest_detection_from(
        self, source_address: str, kinds: Sequence[str], start: float, end: float
    ) -> tuple[str, str] | None:
        """(kind, host) of the newest detection of these kinds from a source in [start, end]."""

    def accepted_logins_from(
        self, source_address: str, start: float, end: float, limit: int
    ) -> list[StoredEvent]:
        """Accepted SSH logins (not detections) from a source in [start, end], oldest first.

        Only id, host, time, type, user, source_address and process are filled in.
        """

    def grants_of(
        self, host: str, user: str, start: float, end: float
    ) -> list[tuple[float, dict[str, str]]]:
        """(time, details) of group grants to a user on a host in [start, end], oldest first."""

    def user_created_between(self, host: str, user: str, start: float, end: float) -> bool:
        """True if the user was created on the host in [start, end]."""

    def hosts_with_events(
        self, kinds: Sequence[str], min_rank: int, start: float, end: float, limit: int
    ) -> dict[str, tuple[float, float]]:
        """host -> (earliest, latest) time of its agent events (not detections) of these
        kinds at or above min_rank in [start, end], for at most limit hosts (in name order)."""

    def detection_near(
        self, kind: str, when: float, within: float, match: Mapping[str, str]
    ) -> bool:
        """True if a `kind` detection lies strictly within `within` seconds of when.

        match narrows it by host, source_address and user (no other keys).
        """


class HistoryTransaction(Protocol):
    """The filesystem free-space history inside the storing transaction."""

    def newest_samples(self, host: str) -> dict[str, float]:
        """mountpoint -> time of its newest sample, for one host."""

    def add_sample(
        self, host: str, mountpoint: str, at: float, avail_bytes: float, size_bytes: float
    ) -> None: ...

    def samples_since(self, host: str, mountpoint: str, since: float) -> list[tuple[float, float]]:
        """(time, avail bytes) of one filesystem from since on, oldest first."""

    def drop_samples_before(self, host: str, cutoff: float) -> None:
        """Delete every sample of host older than cutoff."""


class Transaction(EventTransaction, HistoryTransaction, Protocol):
    """The handle a ReportHook writes through: valid only during on_stored."""


class ReportHook(Protocol):
    """Runs inside the storing transaction for each newly stored report.

    What a hook writes (events, history samples) commits or rolls back with
    the report itself, so it is stored exactly once too. Duplicates never
    reach a hook.
    """

    def on_stored(self, tx: Transaction, host: str, report: pb.Report) -> None: ...


class ReportStore(Protocol):
    """Each agent's identity, counters and latest report; stores batches exactly once."""

    # True if other collectors write the same database (PostgreSQL): their
    # reports reach this collector's state only through changed_agents.
    shared: bool

    def open(self) -> None:
        """Open (and, unless read-only, create and migrate) the database; StoreError if not."""

    def close(self) -> None: ...

    def agents(self) -> list[AgentRecord]:
        """Every known agent with its latest report, by host name."""

    def changed_agents(self, known: Mapping[str, int]) -> list[AgentRecord]:
        """Agents stored with a revision above known's (host -> revision; absent: every one)."""

    def apply(
        self,
        identity: PeerIdentity,
        agent: pb.AgentInfo,
        reports: Sequence[pb.Report],
        received_at: float,
    ) -> ApplyResult:
        """Store one batch (see apply_many); raise StoreError if it could not be."""

    def apply_many(self, batches: Sequence[StoreJob]) -> list[ApplyResult | StoreError]:
        """Store batches durably, once each; one result or error per batch, in order."""


class RegistryStore(Protocol):
    """The enrollment registry's rows: token hashes and issued certificates."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def add_token(
        self, token_hash: str, host: str, department: str, created_at: float, expires_at: float
    ) -> None: ...

    def token(self, token_hash: str) -> TokenRecord | None: ...

    def mark_token_used(self, token_hash: str, at: float) -> bool:
        """Mark an unused token used; False if it was used meanwhile (or is unknown)."""

    def add_certificate(self, record: CertificateRecord) -> None: ...

    def certificate(self, serial: str) -> CertificateRecord | None: ...

    def revoke_host(self, host: str, at: float) -> int:
        """Revoke every unrevoked certificate of host; returns how many."""

    def known_host(self, host: str) -> bool:
        """True if a certificate was ever issued to host."""


class EventStore(Protocol):
    """Security events outside ingestion, on a handle of its own (a thread's or a CLI's)."""

    def close(self) -> None: ...

    def query_events(
        self, host: str | None, since: float | None, min_rank: int, limit: int
    ) -> list[StoredEvent]:
        """The newest `limit` matching events, oldest first, with the host's department."""

    def events_after(self, last_id: int, limit: int) -> list[StoredEvent]:
        """Events stored after last_id, in storing order (a forwarder's read)."""

    def newest_event_id(self) -> int:
        """The id of the newest stored event (0 when there is none)."""

    def claim_destination(self, destination: str) -> bool:
        """True if this handle is the one that forwards to destination now.

        With one collector, always. With collectors sharing a store, one of
        them at a time (the others ask again later; the claim passes on when
        its holder's connection ends), so each event is sent once.
        """

    def load_cursor(self, destination: str) -> int:
        """The last event id a forwarding destination delivered (0 at first)."""

    def save_cursor(self, destination: str, last_id: int) -> None: ...

    def forwarded_bound(self, destinations: Sequence[str]) -> int:
        """The highest event id every destination has delivered (no destinations: no bound)."""

    def delete_events_before(self, cutoff: float, max_id: int, limit: int) -> int:
        """Delete up to limit events older than cutoff with id <= max_id; returns how many."""

    def event_counts(self, host: str | None) -> list[tuple[str, str, int, int, int]]:
        """(host, type, severity rank, detection 0/1, count) since the first event,
        pruning aside; for one host or (None) every host."""
