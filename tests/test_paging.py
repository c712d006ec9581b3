"""End to end: a silent server pages on-call through the real Prometheus and Alertmanager.

agent → collector → Prometheus (dcguard's rules) → Alertmanager (the example
config, receivers pointed at a webhook in this test) → on-call. Waiting two
real minutes for AgentDown is not a test; instead the collector's record of
the host's last report is moved back ten minutes while it is stopped, exactly
what it would hold after ten minutes of silence.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promstack import Prometheus, run_alertmanager
from tests.security_helpers import FakeAgent, ransomware_sign
from tests.support import Agent, Collector, metric, wait_for

ROOT = Path(__file__).resolve().parent.parent


class Webhook:
    """An HTTP server on 127.0.0.1 recording Alertmanager's webhook notifications by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def alertmanager_config(tmp_path: Path, webhook: Webhook) -> Path:
    """The example config with its receivers pointed at the webhook; routes kept as shipped."""
    config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    config["global"] = {"resolve_timeout": "5m"}
    config["receivers"] = [
        {
            "name": r["name"],
            "webhook_configs": [{"url": f"{webhook.url}/{r['name']}", "send_resolved": False}],
        }
        for r in config["receivers"]
    ]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_silent_server_and_an_encrypting_one_page_on_call(
    tmp_path: Path, webhook: Webhook
) -> None:
    """db01 falls silent (AgentDown); files01's agent reports ransomware signs
    (RansomwareSuspected): both reach on-call, in one Prometheus/Alertmanager run."""
    collector = Collector(tmp_path / "collector")
    collector.start()
    agent = Agent(
        tmp_path / "agent",
        [collector.grpc_address],
        host="db01",
        department="so-tu-phap",
        interval="200ms",
    )
    agent.start()
    try:
        wait_for(
            lambda: (
                (
                    metric(collector.metrics(), "dcguard_agent_reports_stored_total", host="db01")
                    or 0
                )
                >= 2
            ),
            message="reports stored",
        )
    finally:
        agent.stop()
    collector.stop()
    with sqlite3.connect(collector.data_dir / "collector.db") as db:
        changed = db.execute("UPDATE agents SET last_seen = last_seen - 600 WHERE host = 'db01'")
        assert changed.rowcount == 1
    db.close()
    collector.start()

    with run_alertmanager(alertmanager_config(tmp_path, webhook), tmp_path) as am_url:
        prometheus = Prometheus(
            tmp_path / "prometheus",
            [f"127.0.0.1:{collector.metrics_port}"],
            alertmanager=am_url.removeprefix("http://"),
        )
        prometheus.start()
        try:
            encrypting = FakeAgent(collector.grpc_address, host="files01")
            try:
                started = time.monotonic()
                encrypting.send([ransomware_sign(time.time(), extension=".locked")])
            finally:
                encrypting.close()
            wait_for(
                lambda: len(webhook.received) >= 2,
                timeout=60,
                interval=0.5,
                message="two notifications from Alertmanager",
            )
            took = time.monotonic() - started
        finally:
            prometheus.stop()
            collector.stop()

    pages = {n["alerts"][0]["labels"]["alertname"]: (path, n) for path, n in webhook.received}
    path, notification = pages["AgentDown"]
    assert path == "/oncall"  # severity page goes to on-call, not the ticket queue
    (alert,) = notification["alerts"]
    assert alert["labels"]["host"] == "db01"
    assert alert["labels"]["department"] == "so-tu-phap"
    assert alert["labels"]["severity"] == "page"
    assert "db01 (so-tu-phap)" in alert["annotations"]["summary"]
    assert alert["annotations"]["runbook_url"].endswith("runbooks.md#agentdown")

    path, notification = pages["RansomwareSuspected"]
    assert path == "/oncall"
    (alert,) = notification["alerts"]
    assert alert["labels"]["host"] == "files01"
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["runbook_url"].endswith("runbooks.md#ransomwaresuspected")
    # The example's group_wait (10 s) plus a scrape and an evaluation (1 s each here).
    assert took < 30, took
