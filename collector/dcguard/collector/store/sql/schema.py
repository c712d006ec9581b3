"""The collector database's schema, every table in one place, as named migrations for both engines.

Each migration is applied once, in order, and recorded by name in
schema_migrations (each engine's connection.migrate). The names and
statements are those the tables were created with when each feature kept
its own, so a database made by any earlier collector is already up to
date: a change to a table is a new migration appended here, never an edit
of one below. The statements are spelled per engine by its Dialect: SQLite
gets them as they always were, PostgreSQL its own types (DOUBLE PRECISION
for times, BIGINT for counters and sequences, BYTEA for the latest report,
an identity column for event ids, whose order is the forwarders' cursor).
"""

from __future__ import annotations

from dcguard.collector.store.sql.dialect import Dialect

__all__ = [
    "FAILURES_WHERE",
    "Migration",
    "agents_clock_skew",
    "agents_schema",
    "enrollment_schema",
    "fs_history_schema",
    "migrations",
    "security_schema",
]

# Named schema steps, each applied once, in order; names, unlike numbers,
# never collide between features developed side by side.
Migration = tuple[str, tuple[str, ...]]  # (name, statements)

# Failed logins stored from agents: written identically in the detections'
# queries (sql/events.py), so SQLite can use the partial index below.
FAILURES_WHERE = "type IN ('ssh_login_failed', 'ssh_invalid_user') AND detection = 0"


def agents_schema(d: Dialect, extra_columns: str = "") -> Migration:
    """Each agent's identity, counters and latest report (extra_columns: the engine's own)."""
    return (
        "agents-v1",
        (
            f"""
    CREATE TABLE agents (
        host TEXT PRIMARY KEY,
        department TEXT NOT NULL,
        agent_version TEXT NOT NULL DEFAULT '',
        os TEXT NOT NULL DEFAULT '',
        kernel TEXT NOT NULL DEFAULT '',
        interval_seconds {d.real} NOT NULL DEFAULT 15,
        instance_id TEXT NOT NULL DEFAULT '',
        first_seen {d.real} NOT NULL,
        last_seen {d.real} NOT NULL,
        max_sequence {d.bigint} NOT NULL DEFAULT 0,
        reports_stored {d.bigint} NOT NULL DEFAULT 0,
        reports_lost {d.bigint} NOT NULL DEFAULT 0,
        latest_report {d.blob}{extra_columns}
    )
    """,
        ),
    )


def agents_clock_skew(d: Dialect) -> Migration:
    """A later step of the agents table; the report store applies it after agents_schema."""
    return (
        "agents-clock-skew-v1",
        (f"ALTER TABLE agents ADD COLUMN clock_skew_seconds {d.real} NOT NULL DEFAULT 0",),
    )


def enrollment_schema(d: Dialect) -> Migration:
    """The enrollment registry: one-time token hashes and issued certificates."""
    return (
        "enrollment-v1",
        (
            f"""
    CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        created_at {d.real} NOT NULL,
        expires_at {d.real} NOT NULL,
        used_at {d.real}
    )
    """,
            f"""
    CREATE TABLE agent_certificates (
        serial TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        department TEXT NOT NULL,
        issued_at {d.real} NOT NULL,
        not_after {d.real} NOT NULL,
        revoked_at {d.real}
    )
    """,
            "CREATE INDEX agent_certificates_host ON agent_certificates (host)",
        ),
    )


def fs_history_schema(d: Dialect) -> Migration:
    """Free-space samples for the filling-fast trend (risk/history.py)."""
    return (
        "risk-fs-history-v1",
        (
            f"""
    CREATE TABLE fs_history (
        host TEXT NOT NULL,
        mountpoint TEXT NOT NULL,
        ts {d.real} NOT NULL,
        -- {d.real}, not an integer: sizes are uint64 on the wire and SQL integers
        -- are signed 64-bit; a trend needs no byte-exact precision.
        avail_bytes {d.real} NOT NULL,
        size_bytes {d.real} NOT NULL,
        PRIMARY KEY (host, mountpoint, ts)
    ){d.without_rowid}
    """,
        ),
    )


def security_schema(d: Dialect) -> Migration:
    """Security events, their per-host counts (the metrics) and forwarding cursors."""
    return (
        "security-events-v1",
        (
            f"""
    CREATE TABLE security_events (
        id {d.serial_id},
        host TEXT NOT NULL,
        event_time {d.real} NOT NULL,
        received_at {d.real} NOT NULL,
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
        details TEXT NOT NULL DEFAULT '{{}}',
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
            "CREATE INDEX security_events_source_time "
            "ON security_events (source_address, event_time)",
            # Brute-force and distributed-attack windows: a partial index of failed
            # logins only, so a window is a few index seeks even in a flood.
            f"CREATE INDEX security_failures ON security_events (source_address, host, event_time) "
            f"WHERE {FAILURES_WHERE}",
            # Suppression and success-after-failures look up the few detections.
            "CREATE INDEX security_detections ON security_events (type, event_time) "
            "WHERE detection = 1",
            # New privileged account: one user on one host.
            'CREATE INDEX security_events_user ON security_events (host, "user", event_time)',
            f"""
    CREATE TABLE security_event_counts (
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        severity INTEGER NOT NULL,
        detection INTEGER NOT NULL,
        count {d.bigint} NOT NULL,
        PRIMARY KEY (host, type, severity, detection)
    ){d.without_rowid}
    """,
            f"""
    CREATE TABLE security_forward_cursors (
        destination TEXT PRIMARY KEY,
        last_id {d.bigint} NOT NULL
    )
    """,
        ),
    )


def migrations(d: Dialect, agents_extra_columns: str = "") -> tuple[Migration, ...]:
    """Every table's migrations in the order they are applied, spelled for one engine."""
    return (
        agents_schema(d, agents_extra_columns),
        agents_clock_skew(d),
        enrollment_schema(d),
        fs_history_schema(d),
        security_schema(d),
    )
