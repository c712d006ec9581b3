"""Correlation rules run at the collector, over every host's stored events.

Each rule runs inside the transaction that stores the event it judges and
reads its window from the stored events, not from memory: a restarted
collector judges exactly as before, windows use the events' own times (a
backlog delivered an hour late is judged as it happened), and what a rule
writes commits with the report or not at all. A window is looked at on both
sides of the new event, so an event that arrives after later ones still
completes a window. Each rule's defaults and reasons are in
docs/security-collector.md.
"""

from __future__ import annotations

from dataclasses import replace

from dcguard.collector.events import (
    RANSOMWARE_SEVERITY,
    RANSOMWARE_SIGNS,
    StoredEvent,
    format_time,
    is_ransomware_sign,
    severity_rank,
)
from dcguard.collector.security.config import DetectionConfig
from dcguard.collector.store import EventTransaction
from dcguard.common.i18n import DEFAULT, Language, language

__all__ = ["DETECTIONS", "Detector"]

DETECTIONS = (
    "brute_force",
    "distributed_attack",
    "success_after_failures",
    "new_privileged_account",
    "ransomware_spreading",
)
FAILURES = ("ssh_login_failed", "ssh_invalid_user")  # the store's failed logins
ATTACKS = ("brute_force", "distributed_attack")
GRANTS = ("group_member_added", "user_modified")
# Bounds the per-event work of the distributed-attack rule for a source that
# has failed on very many hosts (it has long been detected by then).
MAX_HOSTS_PER_SOURCE = 1000


class Detector:
    """Judges each newly stored agent event and stores the detections it completes."""

    def __init__(self, config: DetectionConfig, lang: Language | None = None) -> None:
        self.config = config
        # Detections are stored (and forwarded to the SIEM) with their message in the
        # collector's language; type, severity and technique are codes in every language.
        self.lang = lang or language(DEFAULT)

    def judge(self, tx: EventTransaction, event: StoredEvent) -> None:
        if event.detection:
            return
        c = self.config
        if event.type in FAILURES and event.source_address:
            if c.brute_force:
                self._brute_force(tx, event)
            if c.distributed:
                self._distributed(tx, event)
        elif (
            event.type == "ssh_login_accepted" and event.source_address and c.success_after_failures
        ):
            self._success_after(tx, event)
        if c.ransomware_spreading and is_ransomware_sign(event):
            self._spreading(tx, event)
        if (
            c.privileged_account
            and event.user
            and (event.type == "user_created" or event.type in GRANTS)
        ):
            self._privileged(tx, event)

    # --- brute force (Wazuh 5763) -------------------------------------------

    def _brute_force(self, tx: EventTransaction, event: StoredEvent) -> None:
        n, w, t = self.config.brute_force_threshold, self.config.brute_force_window, event.time
        # Failures are counted per type, as Wazuh's 5763 (failed password) and
        # 5712 (invalid user) do: sshd logs one attempt on a missing account
        # as both "Invalid user" and "Failed password for invalid user", and
        # adding the two would fire at half the threshold.
        args = (event.source_address, event.host, event.type, event.id)
        # The n-1 nearest failures on each side are enough to find any window
        # of n that contains this one.
        before = tx.failure_times_before(*args, t - w, t, n - 1)
        after = tx.failure_times_after(*args, t, t + w, n - 1)
        times = sorted([*before, t, *after])
        start = _first_window(times, t, n, w)
        if start is None:
            return
        fired_at = times[start + n - 1]
        if self._recent(
            tx,
            "brute_force",
            fired_at,
            self.config.brute_force_suppress,
            host=event.host,
            source_address=event.source_address,
        ):
            return
        count = tx.count_failures(
            event.source_address, event.host, event.type, times[start], times[start] + w
        )
        values = {
            "count": count,
            "source": event.source_address,
            "host": event.host,
            "window": format(w, "g"),
        }
        message = (
            self.lang.tr(
                "{count} failed SSH logins from {source} on {host} within {window}s", **values
            )
            if event.type == "ssh_login_failed"
            else self.lang.tr(
                "{count} invalid SSH users from {source} on {host} within {window}s", **values
            )
        )
        self._store(
            tx,
            event,
            "brute_force",
            fired_at,
            "high",
            "T1110",
            message,
            {
                "failures": str(count),
                "counted": event.type,
                "window_seconds": f"{w:g}",
                "first_failure": format_time(times[start]),
            },
        )
        self._success_after_detection(tx, "brute_force", event, fired_at)

    # --- distributed attack --------------------------------------------------

    def _distributed(self, tx: EventTransaction, event: StoredEvent) -> None:
        need, w, t = self.config.distributed_hosts, self.config.distributed_window, event.time
        src = event.source_address
        if self._recent(tx, "distributed_attack", t, w, source_address=src):
            return  # this attack was already reported: skip the per-host look-ups
        # Per host, its nearest failure at or before t and at or after t: a
        # window containing t holds a host iff it holds one of those two.
        latest: dict[str, float] = {}
        earliest: dict[str, float] = {}
        for host in self._hosts_failed_from(tx, src):
            before = tx.latest_failure(src, host, t - w, t)
            if before is not None:
                latest[host] = before
            after = tx.earliest_failure(src, host, t, t + w)
            if after is not None:
                earliest[host] = after
        crowd = _crowded(latest, earliest, t, w, need)
        if crowd is None:
            return
        fired_at, seen = crowd
        if self._recent(tx, "distributed_attack", fired_at, w, source_address=src):
            return
        hosts = sorted(seen)
        self._store(
            tx,
            event,
            "distributed_attack",
            fired_at,
            "critical",
            "T1110",
            self.lang.tr(
                "failed SSH logins from {source} on {count} hosts within {window}s: {hosts}",
                source=src,
                count=len(hosts),
                window=format(w, "g"),
                hosts=", ".join(hosts),
            ),
            {
                "hosts": ",".join(hosts),
                "host_count": str(len(hosts)),
                "window_seconds": f"{w:g}",
            },
        )
        self._success_after_detection(tx, "distributed_attack", event, fired_at)

    @staticmethod
    def _hosts_failed_from(tx: EventTransaction, src: str) -> list[str]:
        """Every host this source ever failed on, by skipping through the index (one seek each)."""
        hosts: list[str] = []
        host = ""
        while len(hosts) < MAX_HOSTS_PER_SOURCE:
            found = tx.next_failed_host(src, host)
            if found is None:
                break
            host = found
            hosts.append(host)
        return hosts

    # --- ransomware spreading --------------------------------------------------

    def _spreading(self, tx: EventTransaction, event: StoredEvent) -> None:
        need, w, t = self.config.spreading_hosts, self.config.spreading_window, event.time
        if self._recent(tx, "ransomware_spreading", t, w):
            return  # this outbreak was already reported: one detection per window
        # Per host, its newest sign in [t - w, t] and its oldest in [t, t + w].
        signs, rank = RANSOMWARE_SIGNS, severity_rank(RANSOMWARE_SEVERITY)
        before = tx.hosts_with_events(signs, rank, t - w, t, MAX_HOSTS_PER_SOURCE)
        after = tx.hosts_with_events(signs, rank, t, t + w, MAX_HOSTS_PER_SOURCE)
        latest = {host: last for host, (_, last) in before.items()}
        earliest = {host: first for host, (first, _) in after.items()}
        crowd = _crowded(latest, earliest, t, w, need)
        if crowd is None:
            return
        fired_at, seen = crowd
        if self._recent(tx, "ransomware_spreading", fired_at, w):
            return
        hosts = sorted(seen)
        # Where it started (the runbook's first question): the earliest sign near t.
        began = {h: before[h][0] if h in before else after[h][0] for h in seen}
        first = min(seen, key=lambda h: (began[h], h))
        self._store(
            tx,
            event,
            "ransomware_spreading",
            fired_at,
            "critical",
            "T1486",
            self.lang.tr(
                "ransomware signs on {count} hosts within {window}s: {hosts} (first: {first})",
                count=len(hosts),
                window=format(w, "g"),
                hosts=", ".join(hosts),
                first=first,
            ),
            {
                "hosts": ",".join(hosts),
                "host_count": str(len(hosts)),
                "first_host": first,
                "window_seconds": f"{w:g}",
            },
        )

    # --- success after failures ----------------------------------------------

    def _success_after(self, tx: EventTransaction, event: StoredEvent) -> None:
        found = tx.latest_detection_from(
            event.source_address, ATTACKS, event.time - self.config.success_window, event.time
        )
        if found is not None:
            self._success_detected(tx, event, *found)

    def _success_after_detection(
        self, tx: EventTransaction, trigger: str, failure: StoredEvent, fired_at: float
    ) -> None:
        """A late attack detection still catches accepted logins already stored after it."""
        for accepted in tx.accepted_logins_from(
            failure.source_address, fired_at, fired_at + self.config.success_window, 100
        ):
            self._success_detected(
                tx, replace(accepted, received_at=failure.received_at), trigger, failure.host
            )

    def _success_detected(
        self, tx: EventTransaction, accepted: StoredEvent, trigger: str, trigger_host: str
    ) -> None:
        if self._recent(
            tx,
            "success_after_failures",
            accepted.time,
            0.001,
            host=accepted.host,
            source_address=accepted.source_address,
        ):
            return
        self._store(
            tx,
            accepted,
            "success_after_failures",
            accepted.time,
            "critical",
            "T1078",
            self.lang.tr(
                "accepted SSH login for {user} from {source} on {host} after "
                "a {detection} detection on {attacked}",
                user=accepted.user or "?",
                source=accepted.source_address,
                host=accepted.host,
                detection=trigger,
                attacked=trigger_host,
            ),
            {
                "after": trigger,
                "attacked_host": trigger_host,
                "accepted_event_id": str(accepted.id),
            },
        )

    # --- new privileged account ------------------------------------------------

    def _privileged(self, tx: EventTransaction, event: StoredEvent) -> None:
        w = self.config.privileged_window
        group = self._privileged_group(event.details)
        if event.type == "user_created":
            if group:
                self._privileged_detected(tx, event, event.time, group)
                return
            # The grant may have been stored first (a backlog out of order).
            for when, details in tx.grants_of(event.host, event.user, event.time, event.time + w):
                group = self._privileged_group(details)
                if group:
                    self._privileged_detected(tx, event, when, group)
                    return
        elif group and tx.user_created_between(event.host, event.user, event.time - w, event.time):
            self._privileged_detected(tx, event, event.time, group)

    def _privileged_group(self, details: dict[str, str]) -> str:
        """The first privileged group named in an event's details ("group" or "groups")."""
        names = [details.get("group", ""), *details.get("groups", "").split(",")]
        for name in names:
            if name.strip() in self.config.privileged_groups:
                return name.strip()
        return ""

    def _privileged_detected(
        self, tx: EventTransaction, event: StoredEvent, when: float, group: str
    ) -> None:
        if self._recent(
            tx,
            "new_privileged_account",
            when,
            self.config.privileged_window,
            host=event.host,
            user=event.user,
        ):
            return
        self._store(
            tx,
            event,
            "new_privileged_account",
            when,
            "high",
            "T1136.001",
            self.lang.tr(
                "account {user} was created on {host} and added to the privileged group {group}",
                user=event.user,
                host=event.host,
                group=group,
            ),
            {"group": group},
        )

    # --- shared -------------------------------------------------------------------

    def _recent(
        self, tx: EventTransaction, kind: str, when: float, within: float, **match: str
    ) -> bool:
        """True if a `kind` detection matching `match` lies strictly within `within` of when."""
        return tx.detection_near(kind, when, within, match)

    def _store(
        self,
        tx: EventTransaction,
        trigger: StoredEvent,
        kind: str,
        when: float,
        severity: str,
        technique: str,
        message: str,
        details: dict[str, str],
    ) -> None:
        tx.insert_event(
            StoredEvent(
                id=0,
                host=trigger.host,
                department="",
                time=when,
                received_at=trigger.received_at,
                type=kind,
                severity=severity,
                technique=technique,
                user=trigger.user,
                source_address=trigger.source_address,
                process=trigger.process,
                raw=message,
                source="detection",
                details={**details, "trigger_event_id": str(trigger.id)},
                detection=True,
            )
        )


def _crowded(
    latest: dict[str, float], earliest: dict[str, float], t: float, w: float, need: int
) -> tuple[float, dict[str, float]] | None:
    """The first window of w seconds around t holding at least `need` hosts.

    latest: per host, its newest time in [t - w, t]; earliest: its oldest in
    [t, t + w] (a window containing t holds a host iff it holds one of those
    two). Returns when the window filled (the need-th host's time) and each
    host in it with its time there, or None.
    """
    if len(set(latest) | set(earliest)) < need:
        return None
    starts = sorted(
        {s for s in (*latest.values(), *(v - w for v in earliest.values())) if t - w <= s <= t}
    )
    for start in starts:
        seen: dict[str, float] = {}
        for host, when in latest.items():
            if when >= start:
                seen[host] = when
        for host, when in earliest.items():
            if when <= start + w:
                seen[host] = min(seen.get(host, when), when)
        if len(seen) >= need:
            return sorted(seen.values())[need - 1], seen
    return None


def _first_window(times: list[float], t: float, n: int, w: float) -> int | None:
    """Index of the first run of n sorted times spanning at most w that contains t."""
    for i in range(len(times) - n + 1):
        if times[i] > t:
            break
        if times[i + n - 1] - times[i] <= w and times[i + n - 1] >= t:
            return i
    return None
