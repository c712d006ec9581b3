"""Correlation rules run at the collector, over every host's stored events.

Each rule runs inside the transaction that stores the event it judges and
reads its window from the events table, not from memory: a restarted
collector judges exactly as before, windows use the events' own times (a
backlog delivered an hour late is judged as it happened), and what a rule
writes commits with the report or not at all. A window is looked at on both
sides of the new event, so an event that arrives after later ones still
completes a window. Each rule's defaults and reasons are in
docs/security-collector.md.
"""

from __future__ import annotations

import json
import sqlite3

from dcguard.collector.security.config import DetectionConfig
from dcguard.collector.security.model import StoredEvent, format_time
from dcguard.collector.security.storage import FAILURES_WHERE, insert_event

__all__ = ["DETECTIONS", "Detector"]

DETECTIONS = ("brute_force", "distributed_attack", "success_after_failures",
              "new_privileged_account")
FAILURES = ("ssh_login_failed", "ssh_invalid_user")
GRANTS = ("group_member_added", "user_modified")
# Bounds the per-event work of the distributed-attack rule for a source that
# has failed on very many hosts (it has long been detected by then).
MAX_HOSTS_PER_SOURCE = 1000
# Failed logins of one source on one host, through the partial index.
_FAILS = (f"FROM security_events INDEXED BY security_failures WHERE {FAILURES_WHERE} "
          "AND source_address = ? AND host = ?")
_DETECTIONS = "FROM security_events INDEXED BY security_detections WHERE detection = 1"


class Detector:
    """Judges each newly stored agent event and stores the detections it completes."""

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config

    def judge(self, db: sqlite3.Connection, event: StoredEvent) -> None:
        if event.detection:
            return
        c = self.config
        if event.type in FAILURES and event.source_address:
            if c.brute_force:
                self._brute_force(db, event)
            if c.distributed:
                self._distributed(db, event)
        elif (event.type == "ssh_login_accepted" and event.source_address
              and c.success_after_failures):
            self._success_after(db, event)
        if c.privileged_account and event.user and (
                event.type == "user_created" or event.type in GRANTS):
            self._privileged(db, event)

    # --- brute force (Wazuh 5763) -------------------------------------------

    def _brute_force(self, db: sqlite3.Connection, event: StoredEvent) -> None:
        n, w, t = self.config.brute_force_threshold, self.config.brute_force_window, event.time
        # Failures are counted per type, as Wazuh's 5763 (failed password) and
        # 5712 (invalid user) do: sshd logs one attempt on a missing account
        # as both "Invalid user" and "Failed password for invalid user", and
        # adding the two would fire at half the threshold.
        args = (event.source_address, event.host, event.type, event.id)
        # The n-1 nearest failures on each side are enough to find any window
        # of n that contains this one.
        before = [r[0] for r in db.execute(
            f"SELECT event_time {_FAILS} AND type = ? AND id != ? AND event_time BETWEEN ? AND ? "
            "ORDER BY event_time DESC LIMIT ?", (*args, t - w, t, n - 1))]
        after = [r[0] for r in db.execute(
            f"SELECT event_time {_FAILS} AND type = ? AND id != ? AND event_time > ? "
            "AND event_time <= ? ORDER BY event_time LIMIT ?", (*args, t, t + w, n - 1))]
        times = sorted([*before, t, *after])
        start = _first_window(times, t, n, w)
        if start is None:
            return
        fired_at = times[start + n - 1]
        if self._recent(db, "brute_force", fired_at, self.config.brute_force_suppress,
                        host=event.host, source_address=event.source_address):
            return
        count = db.execute(
            f"SELECT COUNT(*) {_FAILS} AND type = ? AND event_time BETWEEN ? AND ?",
            (event.source_address, event.host, event.type, times[start], times[start] + w),
        ).fetchone()[0]
        what = "failed SSH logins" if event.type == "ssh_login_failed" else "invalid SSH users"
        self._store(db, event, "brute_force", fired_at, "high", "T1110",
                    f"{count} {what} from {event.source_address} on {event.host} "
                    f"within {w:g}s", {"failures": str(count), "counted": event.type,
                                       "window_seconds": f"{w:g}",
                                       "first_failure": format_time(times[start])})
        self._success_after_detection(db, "brute_force", event, fired_at)

    # --- distributed attack --------------------------------------------------

    def _distributed(self, db: sqlite3.Connection, event: StoredEvent) -> None:
        need, w, t = self.config.distributed_hosts, self.config.distributed_window, event.time
        src = event.source_address
        if self._recent(db, "distributed_attack", t, w, source_address=src):
            return  # this attack was already reported: skip the per-host look-ups
        # Per host, its nearest failure at or before t and at or after t: a
        # window containing t holds a host iff it holds one of those two.
        latest: dict[str, float] = {}
        earliest: dict[str, float] = {}
        for host in self._hosts_failed_from(db, src):
            row = db.execute(f"SELECT MAX(event_time) {_FAILS} AND event_time BETWEEN ? AND ?",
                             (src, host, t - w, t)).fetchone()
            if row[0] is not None:
                latest[host] = row[0]
            row = db.execute(f"SELECT MIN(event_time) {_FAILS} AND event_time BETWEEN ? AND ?",
                             (src, host, t, t + w)).fetchone()
            if row[0] is not None:
                earliest[host] = row[0]
        if len(set(latest) | set(earliest)) < need:
            return
        starts = sorted({s for s in (*latest.values(), *(v - w for v in earliest.values()))
                         if t - w <= s <= t})
        for start in starts:
            seen: dict[str, float] = {}
            for host, when in latest.items():
                if when >= start:
                    seen[host] = when
            for host, when in earliest.items():
                if when <= start + w:
                    seen[host] = min(seen.get(host, when), when)
            if len(seen) < need:
                continue
            fired_at = sorted(seen.values())[need - 1]
            if self._recent(db, "distributed_attack", fired_at, w, source_address=src):
                return
            hosts = sorted(seen)
            self._store(db, event, "distributed_attack", fired_at, "critical", "T1110",
                        f"failed SSH logins from {src} on {len(hosts)} hosts within {w:g}s: "
                        f"{', '.join(hosts)}",
                        {"hosts": ",".join(hosts), "host_count": str(len(hosts)),
                         "window_seconds": f"{w:g}"})
            self._success_after_detection(db, "distributed_attack", event, fired_at)
            return

    @staticmethod
    def _hosts_failed_from(db: sqlite3.Connection, src: str) -> list[str]:
        """Every host this source ever failed on, by skipping through the index (one seek each)."""
        hosts: list[str] = []
        host = ""
        while len(hosts) < MAX_HOSTS_PER_SOURCE:
            row = db.execute(
                f"SELECT host FROM security_events INDEXED BY security_failures "
                f"WHERE {FAILURES_WHERE} AND source_address = ? AND host > ? "
                "ORDER BY host LIMIT 1", (src, host)).fetchone()
            if row is None:
                break
            host = row[0]
            hosts.append(host)
        return hosts

    # --- success after failures ----------------------------------------------

    def _success_after(self, db: sqlite3.Connection, event: StoredEvent) -> None:
        row = db.execute(
            f"SELECT type, host, event_time {_DETECTIONS} AND source_address = ? "
            "AND type IN ('brute_force', 'distributed_attack') "
            "AND event_time BETWEEN ? AND ? ORDER BY event_time DESC LIMIT 1",
            (event.source_address, event.time - self.config.success_window,
             event.time)).fetchone()
        if row is not None:
            self._success_detected(db, event, row[0], row[1])

    def _success_after_detection(self, db: sqlite3.Connection, trigger: str,
                                 failure: StoredEvent, fired_at: float) -> None:
        """A late attack detection still catches accepted logins already stored after it."""
        src = failure.source_address
        rows = db.execute(
            "SELECT id, host, event_time, user, process, type FROM security_events "
            "WHERE source_address = ? AND type = 'ssh_login_accepted' AND detection = 0 "
            "AND event_time BETWEEN ? AND ? ORDER BY event_time LIMIT 100",
            (src, fired_at, fired_at + self.config.success_window)).fetchall()
        for event_id, host, when, user, process, type_ in rows:
            accepted = StoredEvent(id=event_id, host=host, department="", time=when,
                                   received_at=failure.received_at, type=type_,
                                   severity="info", user=user, source_address=src,
                                   process=process)
            self._success_detected(db, accepted, trigger, failure.host)

    def _success_detected(self, db: sqlite3.Connection, accepted: StoredEvent,
                          trigger: str, trigger_host: str) -> None:
        if self._recent(db, "success_after_failures", accepted.time, 0.001, host=accepted.host,
                        source_address=accepted.source_address):
            return
        self._store(db, accepted, "success_after_failures", accepted.time, "critical", "T1078",
                    f"accepted SSH login for {accepted.user or '?'} from "
                    f"{accepted.source_address} on {accepted.host} after a {trigger} "
                    f"detection on {trigger_host}",
                    {"after": trigger, "attacked_host": trigger_host,
                     "accepted_event_id": str(accepted.id)})

    # --- new privileged account ------------------------------------------------

    def _privileged(self, db: sqlite3.Connection, event: StoredEvent) -> None:
        w = self.config.privileged_window
        group = self._privileged_group(event.details)
        if event.type == "user_created":
            if group:
                self._privileged_detected(db, event, event.time, group)
                return
            # The grant may have been stored first (a backlog out of order).
            rows = db.execute(
                "SELECT event_time, details FROM security_events WHERE host = ? AND user = ? "
                "AND type IN ('group_member_added', 'user_modified') AND detection = 0 "
                "AND event_time BETWEEN ? AND ? ORDER BY event_time",
                (event.host, event.user, event.time, event.time + w)).fetchall()
            for when, details in rows:
                group = self._privileged_group(_json_details(details))
                if group:
                    self._privileged_detected(db, event, when, group)
                    return
        elif group:
            created = db.execute(
                "SELECT event_time FROM security_events WHERE host = ? AND user = ? "
                "AND type = 'user_created' AND detection = 0 AND event_time BETWEEN ? AND ? "
                "ORDER BY event_time DESC LIMIT 1",
                (event.host, event.user, event.time - w, event.time)).fetchone()
            if created is not None:
                self._privileged_detected(db, event, event.time, group)

    def _privileged_group(self, details: dict[str, str]) -> str:
        """The first privileged group named in an event's details ("group" or "groups")."""
        names = [details.get("group", ""), *details.get("groups", "").split(",")]
        for name in names:
            if name.strip() in self.config.privileged_groups:
                return name.strip()
        return ""

    def _privileged_detected(self, db: sqlite3.Connection, event: StoredEvent,
                             when: float, group: str) -> None:
        if self._recent(db, "new_privileged_account", when, self.config.privileged_window,
                        host=event.host, user=event.user):
            return
        self._store(db, event, "new_privileged_account", when, "high", "T1136.001",
                    f"account {event.user} was created on {event.host} and added to the "
                    f"privileged group {group}", {"group": group})

    # --- shared -------------------------------------------------------------------

    def _recent(self, db: sqlite3.Connection, kind: str, when: float, within: float,
                **match: str) -> bool:
        """True if a `kind` detection matching `match` lies strictly within `within` of when."""
        # Keys are column names from this module, never input.
        where = " AND ".join(f"{key} = ?" for key in match)
        row = db.execute(
            f"SELECT 1 {_DETECTIONS} AND type = ? AND {where} "
            "AND event_time > ? AND event_time < ? LIMIT 1",
            (kind, *match.values(), when - within, when + within)).fetchone()
        return row is not None

    def _store(self, db: sqlite3.Connection, trigger: StoredEvent, kind: str, when: float,
               severity: str, technique: str, message: str, details: dict[str, str]) -> None:
        insert_event(db, StoredEvent(
            id=0, host=trigger.host, department="", time=when, received_at=trigger.received_at,
            type=kind, severity=severity, technique=technique, user=trigger.user,
            source_address=trigger.source_address, process=trigger.process, raw=message,
            source="detection", details={**details, "trigger_event_id": str(trigger.id)},
            detection=True))


def _first_window(times: list[float], t: float, n: int, w: float) -> int | None:
    """Index of the first run of n sorted times spanning at most w that contains t."""
    for i in range(len(times) - n + 1):
        if times[i] > t:
            break
        if times[i + n - 1] - times[i] <= w and times[i + n - 1] >= t:
            return i
    return None


def _json_details(text: str) -> dict[str, str]:
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
