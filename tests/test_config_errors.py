"""Bad configs and flags: one clear line naming the key, exit 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(("change", "fragments"), [
    (('department = "so-tu-phap"\n', ""), ["agent.department", "required"]),
    (('interval = "15s"', "interval = 15"), ["agent.interval", "duration"]),
    (('interval = "15s"', 'interval = "15 seconds"'), ["agent.interval", "15 seconds"]),
    (('interval = "15s"', 'interval = "1ms"'), ["agent.interval", "at least"]),
    (('host = "db01"', 'host = "db01\\nx"'), ["agent.host"]),
    (('host = "db01"', "host = true"), ["agent.host", "string"]),
    (("insecure = true", "insecure = true\ninsecur = false"), ["collector.insecur", "unknown"]),
    (("[collector]", "[colector]"), ["[colector] is not known", "did you mean [collector]"]),
    (('addresses = ["127.0.0.1:4740"]', "addresses = []"), ["collector.addresses", "empty"]),
    (('addresses = ["127.0.0.1:4740"]', 'addresses = ["nohostport"]'),
     ["collector.addresses", "host:port"]),
    (('addresses = ["127.0.0.1:4740"]', "addresses = [4740]"), ["collector.addresses"]),
    (("[agent]", "[agent]\nlog_level = \"loud\""), ["agent.log_level", "loud"]),
    (("[agent]", "[sources]\nfilesystem = \"yes\"\n[agent]"), ["sources.filesystem"]),
    (("[agent]", "[sources]\nnosuch = true\n[agent]"), ["sources.nosuch", "unknown"]),
    (("[agent]", "[sources]\ndisable_defaults = true\n[agent]"), ["every source is disabled"]),
    (("[agent]", "[filesystem]\nstat_timeout = \"-1s\"\n[agent]"), ["filesystem.stat_timeout"]),
    (("[agent]", "[filesystem]\nexclude_mountpoints = \"(\"\n[agent]"),
     ["filesystem.exclude_mountpoints", "regular expression"]),
    (("[agent]", "[agent"), ["invalid TOML"]),
])
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
        _one_line_error(run_cli("dcguard.agent", "check-config", "--config", str(locked)),
                        "Permission denied")


def test_a_directory_as_config_is_one_line(tmp_path):
    _one_line_error(run_cli("dcguard.agent", "check-config", "--config", str(tmp_path)),
                    "cannot read config")


@pytest.mark.parametrize("args", [
    ("check-config", "--bogus"),
    ("nosuchcommand",),
    ("collect", "--config"),
])
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


@pytest.mark.parametrize(("change", "fragments"), [
    (('grpc_listen = "127.0.0.1:0"', 'grpc_listen = "0.0.0.0:4740"'),
     ["server.insecure", "loopback"]),
    (('grpc_listen = "127.0.0.1:0"', 'grpc_listen = "localhost"'), ["server.grpc_listen"]),
    (('grpc_listen = "127.0.0.1:0"', 'grpc_listen = "127.0.0.1:99999"'),
     ["server.grpc_listen", "out of range"]),
    (("insecure = true", "insecure = 1"), ["server.insecure", "true or false"]),
    (("insecure = true", "insecure = true\nretention = \"90d\""), ["server.retention", "unknown"]),
    (("[server]", "[server]\ndown_after_intervals = 0"), ["server.down_after_intervals"]),
    (("[server]", "[sever]\n[server]"), ["sever", "unknown"]),
    (("[server]", "[server]\ningest_processes = -1"), ["server.ingest_processes", "at least 0"]),
    (("[server]", '[server]\nmetrics_idle_timeout = "forever"'),
     ["server.metrics_idle_timeout"]),
    (("[server]", '[server]\nmetrics_idle_timeout = "0s"'), ["server.metrics_idle_timeout"]),
    (("[server]", "[server]\nmetrics_max_connections = 0"),
     ["server.metrics_max_connections", "at least 1"]),
    (("[server]", '[server]\nmetrics_max_connections = "many"'),
     ["server.metrics_max_connections"]),
    (("[server]", "[server]\ningest_processes = 65"), ["server.ingest_processes", "at most 64"]),
    (("[server]", '[server]\ningest_processes = "auto"'), ["server.ingest_processes",
                                                          "an integer"]),
])
def test_each_bad_collector_config_is_one_line(tmp_path, change, fragments):
    old, new = change
    assert old in GOOD_COLLECTOR
    _one_line_error(_collector(tmp_path, GOOD_COLLECTOR.replace(old, new, 1)), *fragments)


def test_serve_flags_are_validated_and_insecure_needs_loopback(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text(GOOD_COLLECTOR.format(data=tmp_path / "data"))
    result = run_cli("dcguard.collector", "serve", "--config", str(path),
                     "--grpc-listen", "0.0.0.0:4740")
    _one_line_error(result, "server.insecure", "loopback")
    result = run_cli("dcguard.collector", "serve", "--config", str(path),
                     "--metrics-listen", "nonsense")
    _one_line_error(result, "--metrics-listen")


def test_listing_before_any_agent_reported_says_so(tmp_path):
    result = _collector(tmp_path, GOOD_COLLECTOR)
    assert result.returncode == 1
    assert "no collector database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
