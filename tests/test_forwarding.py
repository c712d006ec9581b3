"""SIEM forwarding from a real collector process to receivers the test runs on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from dcguard.collector.events import format_time
from tests.security_helpers import (
    FakeAgent,
    SyslogListener,
    event,
    failures,
    stored_events,
)
from tests.support import Collector, metric, wait_for

ATTACKER = "203.0.113.5"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SEVERITY = {1: 6, 2: 5, 3: 4, 4: 3, 5: 2}  # our rank → RFC 5424 severity


def forwarding_collector(tmp_path: Path, forward: str, name: str = "c") -> Collector:
    collector = Collector(tmp_path / name, extra_config='[forward]\nretry_max = "1s"\n' + forward)
    collector.start()
    return collector


def syslog_config(listener: SyslogListener, extra: str = "") -> str:
    return (
        f'[forward.syslog]\naddress = "127.0.0.1:{listener.port}"\n'
        f'transport = "{listener.transport}"\n{extra}\n'
    )


def ids(listener: SyslogListener) -> list[int]:
    return [int(m.sd["id"]) for m in listener.received()]


def stored_ids(collector: Collector) -> list[int]:
    return [int(str(r["id"])) for r in stored_events(collector.data_dir / "collector.db")]


def attack(agent: FakeAgent, now: float) -> None:
    agent.send(
        [
            *failures(ATTACKER, now, 10),
            event(
                "ssh_login_accepted",
                now + 20,
                source_address=ATTACKER,
                user="root",
                method="password",
            ),
            event("sudo_command", now + 25, user="root", command="/usr/bin/id"),
        ]
    )


@pytest.fixture
def listener():
    receiver = SyslogListener("tcp").start()
    yield receiver
    receiver.stop()


def test_every_event_arrives_once_as_rfc5424_with_ecs_json(tmp_path, listener):
    collector = forwarding_collector(tmp_path, syslog_config(listener))
    agent = FakeAgent(collector.grpc_address, host="web01", department="so-tu-phap")
    try:
        now = time.time() - 60
        attack(agent, now)
        rows = stored_events(collector.data_dir / "collector.db")
        assert len(rows) == 14  # 12 events, brute force, success after failures
        wait_for(lambda: len(listener.received()) >= len(rows), message="all events at the SIEM")
        assert sorted(ids(listener)) == [r["id"] for r in rows]  # each once
        assert listener.errors == []
        by_id = {int(m.sd["id"]): m for m in listener.received()}
        for row in rows:
            message = by_id[int(str(row["id"]))]
            assert message.pri == 10 * 8 + SEVERITY[int(str(row["severity"]))]  # authpriv
            assert message.version == "1"
            assert RFC3339.fullmatch(message.timestamp)
            assert message.timestamp == format_time(float(str(row["event_time"])))
            assert (message.hostname, message.app_name, message.msgid) == (
                "web01",
                "dcguard",
                row["type"],
            )
            assert message.sd_id == "dcguard@32473"
            assert message.sd["department"] == "so-tu-phap"
            doc = message.json
            assert doc["@timestamp"] == message.timestamp
            assert doc["host"] == {"name": "web01"}
            assert doc["labels"]["department"] == "so-tu-phap"
            assert doc["event"]["action"] == row["type"]
            assert doc["event"]["severity"] == row["severity"]
            assert (
                doc["event"]["kind"]
                == message.sd["kind"]
                == ("alert" if row["detection"] else "event")
            )
        brute = next(m.json for m in by_id.values() if m.msgid == "brute_force")
        assert brute["source"] == {"ip": ATTACKER}
        assert brute["user"] == {"name": "root"}
        assert brute["threat"] == {"framework": "MITRE ATT&CK", "technique": {"id": ["T1110"]}}
        assert "intrusion_detection" in brute["event"]["category"]
        sudo = next(m.json for m in by_id.values() if m.msgid == "sudo_command")
        assert sudo["process"] == {"name": "sudo"}
        text = collector.metrics_text()
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=text,
            text=True,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        samples = collector.metrics()
        assert metric(
            samples, "dcguard_collector_events_forwarded_total", destination="syslog"
        ) == len(rows)
        assert (
            metric(samples, "dcguard_collector_events_forward_backlog", destination="syslog") == 0
        )
    finally:
        agent.close()
        collector.stop()


def test_siem_down_for_a_while_loses_nothing_and_ingestion_goes_on(tmp_path, listener):
    collector = forwarding_collector(tmp_path, syslog_config(listener))
    agent = FakeAgent(collector.grpc_address)
    try:
        now = time.time() - 300
        agent.send(failures("198.51.100.1", now, 3))
        wait_for(lambda: len(listener.received()) == 3, message="first events")
        listener.stop()
        for i in range(10):  # the SIEM is down; every report is still acknowledged
            agent.send([event("file_modified", now + i, path=f"/etc/f{i}")])
        wait_for(
            lambda: (
                (
                    metric(
                        collector.metrics(),
                        "dcguard_collector_events_forward_failed_total",
                        destination="syslog",
                    )
                    or 0
                )
                > 0
            ),
            message="a failed delivery",
        )
        assert len(listener.received()) == 3
        listener.start()  # back on the same port
        wait_for(
            lambda: len(listener.received()) >= 13, timeout=30, message="the backlog delivered"
        )
        assert sorted(ids(listener)) == stored_ids(collector)  # nothing lost, nothing twice
    finally:
        agent.close()
        collector.stop()


def test_forwarding_resumes_after_restart_and_is_at_least_once_across_a_crash(tmp_path, listener):
    collector = forwarding_collector(tmp_path, syslog_config(listener))
    agent = FakeAgent(collector.grpc_address)
    try:
        now = time.time() - 300
        agent.send(failures("198.51.100.1", now, 4))
        wait_for(lambda: len(listener.received()) == 4, message="first events")
        collector.stop()
        collector.start()  # a clean restart resends nothing: the cursor was saved
        agent.send([event("port_opened", now + 10, port=4444, protocol="tcp")])
        wait_for(lambda: len(listener.received()) == 5, message="the new event")
        assert sorted(ids(listener)) == stored_ids(collector)

        listener.stop()
        agent.send(failures("198.51.100.2", now + 20, 6))
        collector.kill()  # kill -9 with six events not yet forwarded
        collector.start()
        listener.start()
        wait_for(
            lambda: set(ids(listener)) == set(stored_ids(collector)),
            timeout=30,
            message="everything delivered after the crash",
        )
        assert len(stored_ids(collector)) == 11
    finally:
        agent.close()
        collector.stop()


def test_hostile_content_never_breaks_framing_or_json(tmp_path, listener):
    out = tmp_path / "events.jsonl"
    collector = forwarding_collector(
        tmp_path, syslog_config(listener) + f'[forward.file]\npath = "{out}"\n'
    )
    agent = FakeAgent(collector.grpc_address)
    nasty = [
        "line one\nline two\r\n<13>1 - forged - - - - injected",
        '"] [x@1 a="b"] \\ \\\\ ]',
        # No NUL: the agent strips it and the collector refuses it at the door.
        "\u2028\u2029\u0085 \u202e zero-width\u200b 😈 ñ 中文",
        "9999 " + "A" * 4000,
    ]
    try:
        now = time.time() - 60
        events = [
            event(
                "sudo_command",
                now + i,
                user=text[:200],
                raw=text,
                source_address=text[:50],
                note=text,
            )
            for i, text in enumerate(nasty)
        ]
        events.append(event("file_modified", now, path="/etc/" + "é" * 4000, raw="x" * 4096))
        agent.send(events)
        wait_for(lambda: len(listener.received()) == 5, message="hostile events at the SIEM")
        assert listener.errors == []
        docs = [m.json for m in listener.received()]
        got = sorted(
            (d for d in docs if d["event"]["action"] == "sudo_command"),
            key=lambda d: d["@timestamp"],
        )
        assert len(got) == 4
        for doc, text in zip(got, nasty):
            assert doc["message"] == text
            assert doc["dcguard"]["details"]["note"] == text
            assert doc["source"] == {"address": text[:50]}  # not an IP: never source.ip
        (fim,) = (d for d in docs if d["event"]["action"] == "file_modified")
        assert fim["file"]["path"] == "/etc/" + "é" * 4000
        wait_for(
            lambda: out.exists() and out.read_text().count("\n") == 5, message="the JSON lines file"
        )
        lines = out.read_bytes().split(b"\n")
        assert lines[-1] == b"" and all(line.isascii() for line in lines)
        messages = [json.loads(line)["message"] for line in lines[:-1]]
        assert sorted(messages) == sorted([*nasty, "x" * 4096])
    finally:
        agent.close()
        collector.stop()


def test_json_lines_file_holds_every_event_once(tmp_path):
    out = tmp_path / "siem" / "events.jsonl"
    out.parent.mkdir()
    out.write_text('{"torn": "by a crash mid-wri')  # what an interrupted write leaves
    collector = forwarding_collector(tmp_path, f'[forward.file]\npath = "{out}"\n')
    agent = FakeAgent(collector.grpc_address, host="db01", department="so-y-te")
    try:
        attack(agent, time.time() - 60)
        expected = stored_ids(collector)
        wait_for(
            lambda: out.read_text().count("\n") == 1 + len(expected),
            message="every event in the file",
        )
        torn, *lines = out.read_text().splitlines()
        assert torn == '{"torn": "by a crash mid-wri'
        docs = [json.loads(line) for line in lines]
        assert [int(d["event"]["id"]) for d in docs] == expected
        assert {d["host"]["name"] for d in docs} == {"db01"}
        assert {d["labels"]["department"] for d in docs} == {"so-y-te"}
        alerts = [d for d in docs if d["event"]["kind"] == "alert"]
        assert {d["event"]["action"] for d in alerts} == {"brute_force", "success_after_failures"}
    finally:
        agent.close()
        collector.stop()


def test_min_severity_sends_only_what_the_siem_wants(tmp_path, listener):
    collector = forwarding_collector(tmp_path, syslog_config(listener, 'min_severity = "high"'))
    agent = FakeAgent(collector.grpc_address)
    try:
        attack(agent, time.time() - 60)
        wait_for(
            lambda: (
                metric(
                    collector.metrics(),
                    "dcguard_collector_events_forward_backlog",
                    destination="syslog",
                )
                == 0
                and len(listener.received()) == 2
            ),
            message="the detections only",
        )
        assert sorted(m.msgid for m in listener.received()) == [
            "brute_force",
            "success_after_failures",
        ]
    finally:
        agent.close()
        collector.stop()


def test_udp_one_event_per_datagram(tmp_path):
    receiver = SyslogListener("udp").start()
    collector = forwarding_collector(tmp_path, syslog_config(receiver))
    agent = FakeAgent(collector.grpc_address)
    try:
        agent.send(failures(ATTACKER, time.time() - 60, 3))
        wait_for(lambda: len(receiver.received()) == 3, message="three datagrams")
        assert receiver.errors == []
    finally:
        agent.close()
        collector.stop()
        receiver.stop()


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "siem.crt", tmp_path / "siem.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=siem.test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_verifies_the_siem_certificate(tmp_path):
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    receiver = SyslogListener("tls", tls=context).start()
    good = forwarding_collector(tmp_path, syslog_config(receiver, f'ca_file = "{cert}"'))
    # A collector that does not trust the SIEM's CA sends nothing to it.
    (tmp_path / "other").mkdir()
    other_ca, _ = _certificate(tmp_path / "other")
    bad = forwarding_collector(
        tmp_path, syslog_config(receiver, f'ca_file = "{other_ca}"'), name="bad"
    )
    agents = [
        FakeAgent(good.grpc_address, host="good01"),
        FakeAgent(bad.grpc_address, host="bad01"),
    ]
    try:
        for agent in agents:
            agent.send(failures(ATTACKER, time.time() - 60, 2))
        wait_for(lambda: len(receiver.received()) == 2, message="events over TLS")
        wait_for(
            lambda: (
                (
                    metric(
                        bad.metrics(),
                        "dcguard_collector_events_forward_failed_total",
                        destination="syslog",
                    )
                    or 0
                )
                > 0
            ),
            message="a refused CA",
        )
        assert {m.hostname for m in receiver.received()} == {"good01"}
    finally:
        for agent in agents:
            agent.close()
        good.stop()
        bad.stop()
        receiver.stop()


def test_a_siem_that_stops_reading_never_blocks_ingestion(tmp_path):
    # Accepts the connection, never reads: the forwarder's writes stall.
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    collector = forwarding_collector(
        tmp_path, f'[forward.syslog]\naddress = "127.0.0.1:{server.getsockname()[1]}"\n'
    )
    agent = FakeAgent(collector.grpc_address)
    try:
        now = time.time() - 60
        for i in range(40):  # 40 reports x 50 events x 4 KiB: more than socket buffers hold
            response = agent.submit(
                agent.report(
                    [
                        event("file_modified", now, path=f"/srv/{i}/{j}", raw="x" * 4000)
                        for j in range(50)
                    ]
                )
            )
            assert response.acked_sequence == i + 1
        assert len(stored_ids(collector)) == 2000
        assert collector.stop() == 0  # a write stalled on the SIEM does not hang shutdown
    finally:
        agent.close()
        collector.stop()
        server.close()


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('[forward.syslog]\ntransport = "tcp"', "forward.syslog.address: is required"),
        ('[forward.syslog]\naddress = "siem"', 'forward.syslog.address: must be "host:port"'),
        ('[forward.syslog]\naddress = "siem:0"', "address: port must not be 0"),
        ('[forward.syslog]\naddress = "siem:514"\ntransport = "relp"', "transport: must be one"),
        ('[forward.syslog]\naddress = "siem:514"\nca_file = "/x"', "ca_file: only applies"),
        (
            '[forward.syslog]\naddress = "siem:514"\ntransport = "tls"\nca_file = "/nonexist"',
            "ca_file: no such file",
        ),
        (
            '[forward.syslog]\naddress = "siem:514"\ntransport = "tls"\ncert_file = "/etc/hosts"',
            "cert_file and key_file must be given together",
        ),
        ('[forward.syslog]\naddress = "siem:514"\nfacility = "security"', "facility: must be"),
        ('[forward.syslog]\naddress = "siem:514"\napp_name = "dc guard"', "app_name: must be"),
        ('[forward.syslog]\naddress = "siem:514"\nmin_severity = "urgent"', "min_severity: must"),
        ('[forward.syslog]\naddress = "siem:514"\nudp_max_bytes = 1000', "udp_max_bytes: must be"),
        (
            '[forward.syslog]\naddress = "siem:514"\ntransport = "tls"\nverify = "no"',
            "verify: must be true or",
        ),
        (
            '[forward.syslog]\naddress = "siem:514"\ntransport = "tls"\nca_file = "/etc/hostname"',
            "ca_file: cannot load CA certificates",
        ),
        (
            '[forward.syslog]\naddress = "siem:514"\ntransport = "tls"\n'
            'cert_file = "/etc/hostname"\nkey_file = "/etc/hostname"',
            "cert_file: cannot load the client certificate",
        ),
        ("[forward.file]\nfsync = true", "forward.file.path: is required"),
        ('[forward.file]\npath = ""', "forward.file.path: must not be empty"),
        ("[forward]\nbatch_size = 0", "forward.batch_size: must be at least 1"),
        ('[forward]\nretry_max = "soon"', "forward.retry_max: not a duration"),
        ("[forward]\nhttp = {}", "forward.http: unknown key"),
    ],
)
def test_forward_config_garbage_is_one_line(tmp_path, snippet, expected):
    from dcguard.collector.config import load_config
    from dcguard.common.config import ConfigError

    path = tmp_path / "collector.toml"
    path.write_text(snippet + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_udp_datagrams_respect_their_size_limit_and_still_parse(tmp_path):
    receiver = SyslogListener("udp").start()
    collector = forwarding_collector(tmp_path, syslog_config(receiver, "udp_max_bytes = 1024"))
    agent = FakeAgent(collector.grpc_address)
    try:
        agent.send(
            [
                event(
                    "file_modified",
                    time.time() - 60,
                    path="/etc/" + "p" * 4000,
                    raw="r" * 4096,
                    user="u" * 4000,
                    note="n" * 4000,
                )
            ]
        )
        wait_for(lambda: len(receiver.received()) == 1, message="the datagram")
        assert receiver.errors == []
        doc = receiver.received()[0].json
        assert doc["labels"]["truncated"] == "true"
        assert doc["event"]["action"] == "file_modified"
        assert doc["message"].strip("r") == ""
        assert len(receiver.raw[0]) <= 1024
    finally:
        agent.close()
        collector.stop()
        receiver.stop()


def test_serve_with_a_bad_forward_table_is_one_line_and_exit_2(tmp_path):
    from tests.support import run_cli

    path = tmp_path / "collector.toml"
    path.write_text(
        f'[server]\ninsecure = true\ngrpc_listen = "127.0.0.1:0"\n'
        f'metrics_listen = "127.0.0.1:0"\ndata_dir = "{tmp_path}"\n'
        '[forward.syslog]\naddress = "127.0.0.1:6514"\ntransport = "tls"\n'
        'ca_file = "/etc/hostname"\n'
    )
    result = run_cli("dcguard.collector", "serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "forward.syslog.ca_file" in result.stderr
