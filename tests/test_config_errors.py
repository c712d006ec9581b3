"""Bad configs and flags: one clear line naming the key, exit 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcguard.common.sizes import parse_size
from tests.support import run_cli

GOOD_AGENT = """\
[agent]
host = "db01"
department = "so-tu-phap"
interval = "15s"
state_dir = "{state}"
[collector]
addresses = ["127.0.0.1:4740"]
insecure = true
"""


def _one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _agent(tmp_path: Path, text: str, *command: str):
    path = tmp_path / "agent.toml"
    path.write_text(text.format(state=tmp_path / "state"))
    return run_cli("dcguard.agent", *(command or ("check-config",)), "--config", str(path))


def test_a_good_agent_config_passes(tmp_path):
    result = _agent(tmp_path, GOOD_AGENT)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "filesystem" in result.stdout


def test_check_config_says_when_the_agent_is_not_enrolled(tmp_path: Path) -> None:
    """mTLS without credentials: `run` would exit 2, so check-config must not say OK."""
    secure = GOOD_AGENT.replace("insecure = true\n", "")
    _one_line_error(_agent(tmp_path, secure), "enroll the agent first")
    # What an installer checks before it enrolls: the file alone.
    result = _agent(tmp_path, secure, "check-config", "--no-credentials")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "not enrolled yet" in result.stdout
    result = _agent(tmp_path, GOOD_AGENT)  # insecure (demos, tests) needs no credentials
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (('department = "so-tu-phap"\n', ""), ["agent.department", "required"]),
        (('interval = "15s"', "interval = 15"), ["agent.interval", "duration"]),
        (('interval = "15s"', 'interval = "15 seconds"'), ["agent.interval", "15 seconds"]),
        (('interval = "15s"', 'interval = "1ms"'), ["agent.interval", "at least"]),
        (('host = "db01"', 'host = "db01\\nx"'), ["agent.host"]),
        (('host = "db01"', "host = true"), ["agent.host", "string"]),
        (("insecure = true", "insecure = true\ninsecur = false"), ["collector.insecur", "unknown"]),
        (
            ("insecure = true", 'insecure = true\nkeep_connection = "yes"'),
            ["collector.keep_connection", "true or false"],
        ),
        (("[collector]", "[colector]"), ["[colector] is not known", "did you mean [collector]"]),
        (('addresses = ["127.0.0.1:4740"]', "addresses = []"), ["collector.addresses", "empty"]),
        (
            ('addresses = ["127.0.0.1:4740"]', 'addresses = ["nohostport"]'),
            ["collector.addresses", "host:port"],
        ),
        (('addresses = ["127.0.0.1:4740"]', "addresses = [4740]"), ["collector.addresses"]),
        (
            ('addresses = ["127.0.0.1:4740"]', 'addresses = ["127.0.0.1:\u00b2"]'),
            ["collector.addresses", "host:port"],
        ),
        (("[agent]", '[agent]\nlog_level = "loud"'), ["agent.log_level", "loud"]),
        (("[agent]", '[sources]\nfilesystem = "yes"\n[agent]'), ["sources.filesystem"]),
        (("[agent]", "[sources]\nnosuch = true\n[agent]"), ["sources.nosuch", "unknown"]),
        (("[agent]", "[sources]\ndisable_defaults = true\n[agent]"), ["every source is disabled"]),
        (("[agent]", '[filesystem]\nstat_timeout = "-1s"\n[agent]'), ["filesystem.stat_timeout"]),
        (
            ("[agent]", '[filesystem]\nexclude_mountpoints = "("\n[agent]'),
            ["filesystem.exclude_mountpoints", "regular expression"],
        ),
        (("[agent]", "[agent"), ["invalid TOML"]),
    ],
)
def test_each_bad_agent_config_is_one_line(tmp_path, change, fragments):
    old, new = change
    assert old in GOOD_AGENT
    _one_line_error(_agent(tmp_path, GOOD_AGENT.replace(old, new, 1)), *fragments)


def test_an_unreadable_config_is_one_line(tmp_path):
    missing = run_cli("dcguard.agent", "check-config", "--config", str(tmp_path / "nope.toml"))
    _one_line_error(missing, "cannot read config", "nope.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    _one_line_error(run_cli("dcguard.agent", "check-config", "--config", str(binary)), "UTF-8")
    if os.geteuid() != 0:  # root reads any file; the permission case needs a normal user
        locked = tmp_path / "locked.toml"
        locked.write_text(GOOD_AGENT)
        locked.chmod(0)
        _one_line_error(
            run_cli("dcguard.agent", "check-config", "--config", str(locked)), "Permission denied"
        )


def test_a_directory_as_config_is_one_line(tmp_path):
    _one_line_error(
        run_cli("dcguard.agent", "check-config", "--config", str(tmp_path)), "cannot read config"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check-config", "--bogus"),
        ("nosuchcommand",),
        ("collect", "--config"),
    ],
)
def test_bad_agent_flags_are_one_line(args):
    _one_line_error(run_cli("dcguard.agent", *args))


def test_collect_and_run_reject_a_bad_config_the_same_way(tmp_path):
    bad = GOOD_AGENT.replace('interval = "15s"', "interval = 15")
    _one_line_error(_agent(tmp_path, bad, "collect", "--json"), "agent.interval")
    _one_line_error(_agent(tmp_path, bad, "run"), "agent.interval")


GOOD_COLLECTOR = """\
[server]
grpc_listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
data_dir = "{data}"
insecure = true
"""


def _collector(tmp_path: Path, text: str, *extra: str):
    path = tmp_path / "collector.toml"
    path.write_text(text.format(data=tmp_path / "data"))
    return run_cli("dcguard.collector", "agents", "--config", str(path), *extra)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            ('grpc_listen = "127.0.0.1:0"', 'grpc_listen = "0.0.0.0:4740"'),
            ["server.insecure", "loopback"],
        ),
        (('grpc_listen = "127.0.0.1:0"', 'grpc_listen = "localhost"'), ["server.grpc_listen"]),
        (
            ('grpc_listen = "127.0.0.1:0"', 'grpc_listen = "127.0.0.1:99999"'),
            ["server.grpc_listen", "out of range"],
        ),
        (("insecure = true", "insecure = 1"), ["server.insecure", "true or false"]),
        (
            ("insecure = true", 'insecure = true\nretention = "90d"'),
            ["server.retention", "unknown"],
        ),
        (("[server]", "[server]\ndown_after_intervals = 0"), ["server.down_after_intervals"]),
        (("[server]", "[sever]\n[server]"), ["sever", "unknown"]),
        (
            ("[server]", "[server]\ningest_processes = -1"),
            ["server.ingest_processes", "at least 0"],
        ),
        (
            ("[server]", '[server]\nmetrics_idle_timeout = "forever"'),
            ["server.metrics_idle_timeout"],
        ),
        (("[server]", '[server]\nmetrics_idle_timeout = "0s"'), ["server.metrics_idle_timeout"]),
        (
            ("[server]", "[server]\nmetrics_max_connections = 0"),
            ["server.metrics_max_connections", "at least 1"],
        ),
        (
            ("[server]", '[server]\nmetrics_max_connections = "many"'),
            ["server.metrics_max_connections"],
        ),
        (
            ("[server]", "[server]\ningest_processes = 65"),
            ["server.ingest_processes", "at most 64"],
        ),
        (
            ("[server]", '[server]\ningest_processes = "auto"'),
            ["server.ingest_processes", "an integer"],
        ),
        (
            ("[server]", '[server]\nmax_message_bytes = "4 megs"'),
            ["server.max_message_bytes", "must be a size like"],
        ),
        (
            ("[server]", '[server]\nmax_message_bytes = "1000B"'),
            ["server.max_message_bytes", "at least 1024 bytes"],
        ),
    ],
)
def test_each_bad_collector_config_is_one_line(tmp_path, change, fragments):
    old, new = change
    assert old in GOOD_COLLECTOR
    _one_line_error(_collector(tmp_path, GOOD_COLLECTOR.replace(old, new, 1)), *fragments)


@pytest.mark.parametrize(
    ("store", "fragments"),
    [
        ('engine = "mysql"', ["store.engine", "sqlite, postgresql", "'mysql'"]),
        ("engine = 1", ["store.engine", "a string"]),
        (
            'engine = "sqlite"\ndsn = "host=127.0.0.1"',
            ["store.dsn", 'only for engine = "postgresql"'],
        ),
        ('engine = "sqlite"\npassword_file = "/x"', ["store.password_file", "only for"]),
        ('engine = "postgresql"', ["store.dsn", "is required"]),
        ('engine = "postgresql"\ndsn = 5', ["store.dsn", "a string"]),
        ('engine = "postgresql"\ndsn = ""', ["store.dsn", "must not be empty"]),
        (
            'engine = "postgresql"\ndsn = "host=127.0.0.1 nonsense"',
            ["store.dsn", "not a libpq connection string"],
        ),
        (
            'engine = "postgresql"\ndsn = "host=127.0.0.1 bogus_option=1"',
            ["store.dsn", "not a libpq connection string"],
        ),
        (
            'engine = "postgresql"\ndsn = "host=127.0.0.1 password=hunter2"',
            ["store.dsn", "password_file"],
        ),
        (
            'engine = "postgresql"\ndsn = "postgresql://u:hunter2@127.0.0.1/db"',
            ["store.dsn", "password_file"],
        ),
        (
            'engine = "postgresql"\ndsn = "host=127.0.0.1"\npassword_file = "/nonexistent/pw"',
            ["store.password_file", "cannot read /nonexistent/pw"],
        ),
        (
            'engine = "postgresql"\ndsn = "host=127.0.0.1"\npassword_file = 3',
            ["store.password_file", "a string"],
        ),
        (
            'engine = "postgresql"\ndsn = "host=127.0.0.1"\nsslmode = "verify-full"',
            ["store.sslmode", "unknown"],
        ),
    ],
)
def test_each_bad_store_table_is_one_line(tmp_path, store, fragments):
    text = GOOD_COLLECTOR + "\n[store]\n" + store + "\n"
    result = _collector(tmp_path, text)
    _one_line_error(result, *fragments)
    assert "hunter2" not in result.stderr, "the password must never be shown"
    # serve refuses it at start the same way (nothing is started).
    path = tmp_path / "collector.toml"
    served = run_cli("dcguard.collector", "serve", "--config", str(path), timeout=30)
    _one_line_error(served, *fragments)


def test_an_empty_password_file_is_one_line(tmp_path):
    empty = tmp_path / "pw"
    empty.write_text("\n")
    text = (
        GOOD_COLLECTOR + f'\n[store]\nengine = "postgresql"\ndsn = "host=127.0.0.1"\n'
        f'password_file = "{empty}"\n'
    )
    _one_line_error(_collector(tmp_path, text), "store.password_file", "is empty")


def test_serve_flags_are_validated_and_insecure_needs_loopback(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text(GOOD_COLLECTOR.format(data=tmp_path / "data"))
    result = run_cli(
        "dcguard.collector", "serve", "--config", str(path), "--grpc-listen", "0.0.0.0:4740"
    )
    _one_line_error(result, "server.insecure", "loopback")
    result = run_cli(
        "dcguard.collector", "serve", "--config", str(path), "--metrics-listen", "nonsense"
    )
    _one_line_error(result, "--metrics-listen")


def test_listing_before_any_agent_reported_says_so(tmp_path):
    result = _collector(tmp_path, GOOD_COLLECTOR)
    assert result.returncode == 1
    assert "no collector database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- one size grammar: every key that holds bytes reads the same forms -----------------------

SIZE_KEYS = [  # (the table's TOML, the key, the key's dotted path in errors)
    ("[spool]\n", "max_bytes", "spool.max_bytes"),
    ("[spool]\n", "batch_max_bytes", "spool.batch_max_bytes"),
    ('[[backup]]\nname = "db"\nkind = "push"\nrpo = "1d"\n', "min_size", "backup[0].min_size"),
    ("[storage]\n", "kernel_log_max_read_bytes", "storage.kernel_log_max_read_bytes"),
    ("[security]\n", "raw_max_bytes", "security.raw_max_bytes"),
    ("[security]\n", "max_event_bytes_per_report", "security.max_event_bytes_per_report"),
    ("[security.auth_log]\n", "max_line_bytes", "security.auth_log.max_line_bytes"),
    ("[security.fim]\n", "hash_bytes_per_second", "security.fim.hash_bytes_per_second"),
    ("[security.fim]\n", "max_file_bytes", "security.fim.max_file_bytes"),
]


def _with_sizes(values: dict[str, str]) -> str:
    """GOOD_AGENT with each size key set to values[dotted path] (each table written once)."""
    tables: dict[str, list[str]] = {}
    for table, key, dotted in SIZE_KEYS:
        if dotted in values:
            tables.setdefault(table, []).append(f"{key} = {values[dotted]}\n")
    return GOOD_AGENT + "".join(table + "".join(lines) for table, lines in tables.items())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500M", 500 * 2**20),
        ("500m", 500 * 2**20),
        ("500MiB", 500 * 2**20),
        ("512mib", 512 * 2**20),
        ("500MB", 500 * 10**6),
        ("500 mb", 500 * 10**6),
        ("1.5G", 3 * 2**29),
        ("2GiB", 2 * 2**30),
        ("1TB", 10**12),
        ("64K", 65536),
        ("64kib", 65536),
        ("1048576", 2**20),
        ("4096B", 4096),
        (" 1k ", 1024),
    ],
)
def test_one_size_grammar(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-5M", "5 parsecs", "10PiB", "1.M", ".5M", "5MM"])
def test_what_is_not_a_size(text):
    with pytest.raises(ValueError, match="must be a size like"):
        parse_size(text)


# Each within every key's bounds (batch_max_bytes: at most 64 MiB).
@pytest.mark.parametrize("value", ['"50M"', '"60mib"', '"20MB"', "10485760"])
def test_every_size_key_takes_every_form(tmp_path, value):
    """`[spool] max_bytes = "500M"` and a backup's `min_size = "512mib"` were each refused."""
    result = _agent(tmp_path, _with_sizes({dotted: value for _, _, dotted in SIZE_KEYS}))
    assert result.returncode == 0, (value, result.stderr)


@pytest.mark.parametrize(
    ("dotted", "value", "problem"),
    [
        *((dotted, '"lots"', "must be a size like") for _, _, dotted in SIZE_KEYS),
        *((dotted, "true", "must be a size like") for _, _, dotted in SIZE_KEYS),
        ("spool.max_bytes", "[1]", "must be a size like"),
        ("spool.max_bytes", "-1", "must be at least"),
        ("backup[0].min_size", "-1", "must be at least 0"),
        ("security.auth_log.max_line_bytes", '"1B"', "must be at least 256"),
        ("spool.batch_max_bytes", '"1GiB"', "must be at most"),
    ],
)
def test_size_garbage_is_one_line_naming_the_key(tmp_path, dotted, value, problem):
    _one_line_error(_agent(tmp_path, _with_sizes({dotted: value})), f"{dotted}: {problem}")


def test_the_postgresql_example_config_loads(tmp_path):
    """deploy/collector-postgresql.toml is a valid config (its password file made here)."""
    from dcguard.collector.config import load_config
    from dcguard.collector.store import PostgresDatabase

    example = Path(__file__).parent.parent / "deploy" / "collector-postgresql.toml"
    password = tmp_path / "db-password"
    password.write_text("s3cret\n")
    text = example.read_text().replace("/etc/dcguard/db-password", str(password))
    (tmp_path / "c.toml").write_text(text)
    database = load_config(tmp_path / "c.toml").database
    assert isinstance(database, PostgresDatabase)
    assert database.password == "s3cret"  # noqa: S105 - the test file's own
    assert "s3cret" not in f"{database} {database!r}"


def _check_collector(tmp_path: Path, text: str):
    path = tmp_path / "collector.toml"
    path.write_text(text.format(data=tmp_path / "data"))
    return run_cli("dcguard.collector", "check-config", "--config", str(path))


def test_collector_check_config_passes_a_good_config(tmp_path: Path) -> None:
    result = _check_collector(tmp_path, GOOD_COLLECTOR + '[risk]\nfilling_fast_window = "12h"\n')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'collector.toml'}: OK")
    assert "plaintext" in result.stdout
    assert not (tmp_path / "data").exists()  # checking creates nothing


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        ('[server]\nlog_level = "loud"\n', ["server.log_level", "loud"]),
        ("[tls]\nclient_cert_lifetime = 7\n", ["tls.client_cert_lifetime", "duration"]),
        ('[tls]\nenroll_listen = "nowhere"\n', ["tls.enroll_listen"]),
        ("[limits]\nmax_entries = 0\n", ["limits.max_entries", "at least 1"]),
        ("[limits]\nmax_events = 5\n", ["limits.max_events", "unknown"]),
        ("[limits]\nmax_filesystems = 0\n", ["limits.max_filesystems", "at least 1"]),
        ('[limits]\nmax_sources = "many"\n', ["limits.max_sources", "an integer"]),
        ('[risk]\nfilling_fast_window = "1m"\n', ["risk.filling_fast_window"]),
        ("[risk]\nbogus = 1\n", ["risk.bogus", "unknown"]),
        ('[risk.weights]\nbackup_stale = "high"\n', ["risk.weights.backup_stale"]),
        ('[events]\nretention = "forever"\n', ["events.retention"]),
        ("[detection.brute_force]\nthreshold = -3\n", ["detection.brute_force.threshold"]),
        ("[forward]\nbatch_size = 0\n", ["forward.batch_size", "at least 1"]),
        (
            '[forward.syslog]\naddress = "127.0.0.1:514"\ntransport = "carrier-pigeon"\n',
            ["forward.syslog.transport"],
        ),
        ("[bogus]\n", ["bogus", "unknown"]),
    ],
)
def test_collector_check_config_names_the_bad_key_in_every_section(
    tmp_path: Path, extra: str, fragments: list[str]
) -> None:
    text = GOOD_COLLECTOR
    if extra.startswith("[server]"):
        text = text.replace("[server]\n", extra, 1)
    else:
        text += extra
    _one_line_error(_check_collector(tmp_path, text), *fragments)


def test_collector_check_config_says_when_there_is_no_ca(tmp_path: Path) -> None:
    """mTLS needs the CA `ca init` makes: serve would not start, so this is not OK."""
    secure = GOOD_COLLECTOR.replace("insecure = true\n", "")
    _one_line_error(_check_collector(tmp_path, secure), "ca init")
    made = run_cli("dcguard.collector", "ca", "init", "--config", str(tmp_path / "collector.toml"))
    assert made.returncode == 0, made.stderr
    result = _check_collector(tmp_path, secure)
    assert result.returncode == 0, result.stderr
    assert "mTLS, CA sha256:" in result.stdout
    missing = run_cli("dcguard.collector", "check-config", "--config", str(tmp_path / "nope.toml"))
    _one_line_error(missing, "nope.toml")
