"""`dcguard-collector events`: what an analyst reads, and one-line errors for bad flags."""

from __future__ import annotations

import json
import time

import pytest

from tests.security_helpers import FakeAgent, event, failures
from tests.support import run_cli

ATTACKER = "203.0.113.5"


@pytest.fixture
def populated(collector):
    """Two hosts: an attack on web01 just now, a sudo command on db01 two hours ago."""
    web = FakeAgent(collector.grpc_address, host="web01")
    db = FakeAgent(collector.grpc_address, host="db01", department="so-y-te")
    now = time.time() - 30
    web.send(failures(ATTACKER, now, 10))
    db.send([event("sudo_command", now - 7200, user="alice", raw="sudo: alice : COMMAND=/x")])
    web.close()
    db.close()
    return collector


def test_table_shows_the_attack_readably(populated):
    result = populated.cli("events")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["TIME", "HOST", "SEVERITY", "TYPE"]
    assert len(lines) == 1 + 12
    brute = [line for line in lines if "brute_force" in line]
    assert len(brute) == 1
    assert "high" in brute[0] and "T1110" in brute[0] and ATTACKER in brute[0]
    assert "!brute_force" in brute[0]  # detections are marked
    assert "db01" in lines[1]  # oldest first


def test_json_and_filters(populated):
    def rows(*args: str) -> list[dict[str, object]]:
        result = populated.cli("events", "--json", *args)
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout))

    everything = rows()
    assert len(everything) == 12
    assert everything[0]["department"] == "so-y-te" and everything[0]["user"] == "alice"
    assert {r["host"] for r in rows("--host", "web01")} == {"web01"}
    assert len(rows("--since", "1h")) == 11  # the sudo command was two hours ago
    high = rows("--min-severity", "high")
    assert [(r["type"], r["detection"], r["severity"]) for r in high] == [
        ("brute_force", True, "high")
    ]
    newest = rows("--limit", "2")
    assert [r["id"] for r in newest] == [r["id"] for r in everything[-2:]]
    assert rows("--host", "nosuchhost") == []


def test_hostile_content_stays_on_one_table_line(collector):
    agent = FakeAgent(collector.grpc_address)
    agent.send(
        [
            event(
                "sudo_command",
                time.time(),
                user="eve\nroot",
                raw="line1\nweb01 critical brute_force forged\r\nline3\u2028x",
            )
        ]
    )
    agent.close()
    result = collector.cli("events")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2


def test_no_events_yet_says_so(collector):
    result = collector.cli("events")
    assert result.returncode == 0
    assert "(no events match)" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "yesterday"),
        ("--since", ""),
        ("--min-severity", "urgent"),
        ("--limit", "0"),
        ("--limit", "many"),
        ("--bogus",),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(collector, args):
    result = collector.cli("events", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("dcguard-collector: ")


def test_missing_database_is_one_line(tmp_path):
    config = tmp_path / "collector.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "nothing"}"\n')
    result = run_cli("dcguard.collector", "events", "--config", str(config))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot read events" in result.stderr


def test_works_while_the_collector_is_stopped(populated):
    populated.stop()
    result = populated.cli("events", "--json", "--min-severity", "high")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
