"""A real Prometheus (the Debian binary) on 127.0.0.1 scraping a collector, with dcguard's rules.

Used to prove that every rule and dashboard expression evaluates against real
data. Scrapes and rule evaluations run every second so a test has history
within seconds.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = (
    ROOT / "deploy/prometheus/dcguard-alerts.yml",
    ROOT / "deploy/prometheus/dcguard-recording.yml",
)
JOB = "dcguard-collector"

# A metric selector: a dcguard metric or recorded series with optional matchers.
SELECTOR = re.compile(r"\b((?:[a-z_]+:)?dcguard_[a-z0-9_]+(?::[a-z0-9_]+)?)(\{[^}]*\})?")


def free_port() -> int:
    """A port free on 127.0.0.1 now (Prometheus cannot report an ephemeral port it bound)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """prometheus with a tmp TSDB, scraping the given collector targets every second."""

    def __init__(self, workdir: Path, targets: list[str], alertmanager: str = "") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config = workdir / "prometheus.yml"
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "900ms",
            },
            "rule_files": [str(p) for p in RULE_FILES],
            # honor_labels: dcguard's backup series carry their own `job` label.
            "scrape_configs": [
                {"job_name": JOB, "honor_labels": True, "static_configs": [{"targets": targets}]}
            ],
        }
        if alertmanager:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
            }
        self.config.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def start(self) -> None:
        for _ in range(5):  # the port may be taken between free_port() and bind
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        "prometheus",
                        f"--config.file={self.config}",
                        f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_for(self._ready, timeout=30, interval=0.2, message="prometheus ready")
                return
            except AssertionError:
                if self.proc.poll() is None:
                    raise
        raise AssertionError(f"prometheus did not start:\n{self.log_path.read_text()[-3000:]}")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("prometheus exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns data, raises AssertionError with Prometheus' error."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise AssertionError(f"{params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result as a list (a scalar becomes one item)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"value": data["result"]}]
        return list(data["result"])

    def present(self, expr: str) -> bool:
        """True if every dcguard metric expr names has some series now.

        Names only, not their matchers: a misspelt label matcher must make the
        expression fail the "has data" check, not excuse it.
        """
        return all(self.query(name) for name, _ in SELECTOR.findall(expr))


@contextlib.contextmanager
def run_alertmanager(config: Path, workdir: Path) -> Iterator[str]:
    """The real Alertmanager (Debian prometheus-alertmanager) on 127.0.0.1, clustering off."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "alertmanager missing: apt-get install prometheus-alertmanager"
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for(ready, timeout=30, interval=0.2, message="alertmanager ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
