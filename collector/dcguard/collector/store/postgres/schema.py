"""The PostgreSQL schema, as named migrations: the same tables as the SQLite engine's.

Names match store/sqlite/schema.py, so `migrate --from-sqlite` and a
reader of both see one schema; agents has one column more (revision).
Types are PostgreSQL's: BYTEA for the latest report, DOUBLE PRECISION
for times (seconds since the epoch, as everywhere in the collector),
BIGINT for counters and sequences, and an identity column for event ids
(their order is the forwarders' cursor).
"""

from __future__ import annotations

from dcguard.collector.store.postgres.connection import Migration

__all__ = [
    "AGENTS_CLOCK_SKEW",
    "AGENTS_SCHEMA",
    "ENROLLMENT_SCHEMA",
    "FAILURES_WHERE",
    "FS_HISTORY_SCHEMA",
    "MIGRATIONS",
    "SECURITY_SCHEMA",
]

# Failed logins stored from agents, as the partial index below says it.
FAILURES_WHERE = "type IN ('ssh_login_failed', 'ssh_invalid_user') AND detection = 0"

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
        interval_seconds DOUBLE PRECISION NOT NULL DEFAULT 15,
        instance_id TEXT NOT NULL DEFAULT '',
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        max_sequence BIGINT NOT NULL DEFAULT 0,
        reports_stored BIGINT NOT NULL DEFAULT 0,
        reports_lost BIGINT NOT NULL DEFAULT 0,
        latest_report BYTEA,
        -- Bumped by every batch stored for the host, under its row's lock:
        -- collectors refreshing their copy of the hosts (changed_agents) read
        -- only the rows that changed, and one copy of a host is newer than
        -- another by this number, never by comparing two collectors' clocks.
        revision BIGINT NOT NULL DEFAULT 0
    )
    """,
    ),
)

ENROLLMENT_SCHEMA: Migration = (
    "enrollment-v1",
    (
        """
    CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION
    )
    """,
        """
    CREATE TABLE agent_certificates (
        serial TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        issued_at DOUBLE PRECISION NOT NULL,
        not_after DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    )
    """,
        "CREATE INDEX agent_certificates_host ON agent_certificates (host)",
    ),
)

FS_HISTORY_SCHEMA: Migration = (
    "risk-fs-history-v1",
    (
        """
    CREATE TABLE fs_history (
        host TEXT NOT NULL,
        mountpoint TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        avail_bytes DOUBLE PRECISION NOT NULL,
        size_bytes DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (host, mountpoint, ts)
    )
    """,
    ),
)

SECURITY_SCHEMA: Migration = (
    "security-events-v1",
    (
        """
    CREATE TABLE security_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        host TEXT NOT NULL,
        event_time DOUBLE PRECISION NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        technique TEXT NOT NULL DEFAULT '',
        "user" TEXT NOT NULL DEFAULT '',
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
        "CREATE INDEX security_events_host_time ON security_events (host, event_time)",
        "CREATE INDEX security_events_time ON security_events (event_time)",
        "CREATE INDEX security_events_severity_time ON security_events (severity, event_time)",
        "CREATE INDEX security_events_source_time ON security_events (source_address, event_time)",
        f"CREATE INDEX security_failures ON security_events (source_address, host, event_time) "
        f"WHERE {FAILURES_WHERE}",
        "CREATE INDEX security_detections ON security_events (type, event_time) "
        "WHERE detection = 1",
        'CREATE INDEX security_events_user ON security_events (host, "user", event_time)',
        """
    CREATE TABLE security_event_counts (
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        detection INTEGER NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (host, type, severity, detection)
    )
    """,
        """
    CREATE TABLE security_forward_cursors (
        destination TEXT PRIMARY KEY,
        last_id BIGINT NOT NULL
    )
    """,
    ),
)

# Later steps of the agents table, named as in the SQLite engine; the report
# store applies them after AGENTS_SCHEMA wherever that is given.
AGENTS_CLOCK_SKEW: Migration = (
    "agents-clock-skew-v1",
    ("ALTER TABLE agents ADD COLUMN clock_skew_seconds DOUBLE PRECISION NOT NULL DEFAULT 0",),
)

MIGRATIONS: tuple[Migration, ...] = (
    AGENTS_SCHEMA,
    AGENTS_CLOCK_SKEW,
    ENROLLMENT_SCHEMA,
    FS_HISTORY_SCHEMA,
    SECURITY_SCHEMA,
)
