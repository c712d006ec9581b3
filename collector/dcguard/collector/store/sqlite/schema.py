"""The collector database's schema, every table in one place, as named migrations.

Each migration is applied once, in order, and recorded by name in
schema_migrations (see connection.migrate). The names and statements are
those the tables were created with when each feature kept its own, so a
database made by any earlier collector is already up to date: a change to
a table is a new migration appended here, never an edit of one below.
"""

from __future__ import annotations

from dcguard.collector.store.sqlite.connection import Migration

__all__ = [
    "AGENTS_CLOCK_SKEW",
    "AGENTS_SCHEMA",
    "ENROLLMENT_SCHEMA",
    "FAILURES_WHERE",
    "FS_HISTORY_SCHEMA",
    "MIGRATIONS",
    "SECURITY_SCHEMA",
]

# Failed logins stored from agents: written identically in the detections'
# queries (events.py), so SQLite can use the partial index below.
FAILURES_WHERE = "type IN ('ssh_login_failed', 'ssh_invalid_user') AND detection = 0"

# Each agent's identity, counters and latest report.
AGENTS_SCHEMA: Migration = (
    "agents-v1",
    (
        """
    CREATE TABLE agents (
        host TEXT PRIMARY KEY,
        department TEXT NOT NULL,
        agent_version TEXT NOT NULL DEFAULT '',
        os TEXT NOT NULL DEFAULT '',
        kernel TEXT NOT NULL DEFAULT '',
        interval_seconds REAL NOT NULL DEFAULT 15,
        instance_id TEXT NOT NULL DEFAULT '',
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        max_sequence INTEGER NOT NULL DEFAULT 0,
        reports_stored INTEGER NOT NULL DEFAULT 0,
        reports_lost INTEGER NOT NULL DEFAULT 0,
        latest_report BLOB
    )
    """,
    ),
)

# The enrollment registry: one-time token hashes and issued certificates.
ENROLLMENT_SCHEMA: Migration = (
    "enrollment-v1",
    (
        """
    CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    )
    """,
        """
    CREATE TABLE agent_certificates (
        serial TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        issued_at REAL NOT NULL,
        not_after REAL NOT NULL,
        revoked_at REAL
    )
    """,
        "CREATE INDEX agent_certificates_host ON agent_certificates (host)",
    ),
)

# Free-space samples for the filling-fast trend (risk/history.py).
FS_HISTORY_SCHEMA: Migration = (
    "risk-fs-history-v1",
    (
        """
    CREATE TABLE fs_history (
        host TEXT NOT NULL,
        mountpoint TEXT NOT NULL,
        ts REAL NOT NULL,
        -- REAL, not INTEGER: sizes are uint64 on the wire and SQLite integers
        -- are signed 64-bit; a trend needs no byte-exact precision.
        avail_bytes REAL NOT NULL,
        size_bytes REAL NOT NULL,
        PRIMARY KEY (host, mountpoint, ts)
    ) WITHOUT ROWID
    """,
    ),
)

# Security events, their per-host counts (the metrics) and forwarding cursors.
SECURITY_SCHEMA: Migration = (
    "security-events-v1",
    (
        """
    CREATE TABLE security_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        event_time REAL NOT NULL,
        received_at REAL NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        technique TEXT NOT NULL DEFAULT '',
        user TEXT NOT NULL DEFAULT '',
        source_address TEXT NOT NULL DEFAULT '',
        process TEXT NOT NULL DEFAULT '',
        raw TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL DEFAULT '',
        port INTEGER NOT NULL DEFAULT 0,
        protocol TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        details TEXT NOT NULL DEFAULT '{}',
        detection INTEGER NOT NULL DEFAULT 0
    )
    """,
        # `events --host H --since`, the per-host windows of the detections.
        "CREATE INDEX security_events_host_time ON security_events (host, event_time)",
        # `events --since` across hosts, and retention pruning.
        "CREATE INDEX security_events_time ON security_events (event_time)",
        # `events --min-severity high` over a long period.
        "CREATE INDEX security_events_severity_time ON security_events (severity, event_time)",
        # Accepted logins from one source in a time range.
        "CREATE INDEX security_events_source_time ON security_events (source_address, event_time)",
        # Brute-force and distributed-attack windows: a partial index of failed
        # logins only, so a window is a few index seeks even in a flood.
        f"CREATE INDEX security_failures ON security_events (source_address, host, event_time) "
        f"WHERE {FAILURES_WHERE}",
        # Suppression and success-after-failures look up the few detections.
        "CREATE INDEX security_detections ON security_events (type, event_time) "
        "WHERE detection = 1",
        # New privileged account: one user on one host.
        "CREATE INDEX security_events_user ON security_events (host, user, event_time)",
        """
    CREATE TABLE security_event_counts (
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        detection INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (host, type, severity, detection)
    ) WITHOUT ROWID
    """,
        """
    CREATE TABLE security_forward_cursors (
        destination TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    )
    """,
    ),
)

# Later steps of the agents table; the report store applies them after
# AGENTS_SCHEMA wherever that is given, so every user of the table gets every column.
AGENTS_CLOCK_SKEW: Migration = (
    "agents-clock-skew-v1",
    ("ALTER TABLE agents ADD COLUMN clock_skew_seconds REAL NOT NULL DEFAULT 0",),
)

MIGRATIONS: tuple[Migration, ...] = (
    AGENTS_SCHEMA,
    AGENTS_CLOCK_SKEW,
    ENROLLMENT_SCHEMA,
    FS_HISTORY_SCHEMA,
    SECURITY_SCHEMA,
)
