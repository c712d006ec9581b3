"""Real dcguard processes on 127.0.0.1 for tests, and ways to read what they expose.

Processes are started with this interpreter (python -m dcguard...), log to a
file, and announce their bound ports in a log line, so tests use ephemeral
ports without races. Every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

LISTENING = re.compile(r"listening grpc=(\S+):(\d+) metrics=(\S+):(\d+)")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll predicate until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def run_cli(
    *args: str,
    timeout: float = 30.0,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m dcguard.<agent|collector> args...` and capture its output.

    In English unless env or the arguments say otherwise: the tester's own locale
    (LANG=vi_VN.UTF-8 on a Vietnamese desktop) must not decide what a test reads."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        env={**os.environ, **ENGLISH, **(env or {})},
        check=False,
    )


# The locale variables dcguard reads its language from (dcguard.common.i18n), set to English.
ENGLISH = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text → {(sample name, labels): value}."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    """The value of the one sample whose labels include the given ones (None if absent)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    if len(found) > 1:
        raise AssertionError(f"{name}{labels} matches {len(found)} samples")
    return found[0] if found else None


class Process:
    """A dcguard process whose output goes to a log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        # Added to the environment of the process (e.g. libfaketime's variables).
        self.env: dict[str, str] = {}
        # A command that execs the process (e.g. prlimit with its limits), or none.
        self.wrapper: list[str] = []

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **ENGLISH, **self.env},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send sig and wait; SIGKILL it and its process group if it does not exit in time.

        The group (its own session, see start) holds what it started: ingest
        processes, journalctl. A process killed on the spot cannot stop them.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        self.stop(signal.SIGKILL)


class Collector(Process):
    """dcguard-collector serve on 127.0.0.1, insecure unless the config says otherwise."""

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        server_extra: str = "",
        ingest_processes: int = 0,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "collector.toml"
        server = textwrap.dedent(server_extra) if server_extra else "insecure = true\n"
        if ingest_processes:
            server += f"\ningest_processes = {ingest_processes}\n"
        self.config_path.write_text(
            "[server]\n"
            'grpc_listen = "127.0.0.1:0"\n'
            'metrics_listen = "127.0.0.1:0"\n'
            f'data_dir = "{self.data_dir}"\n'
            f"{server}\n{textwrap.dedent(extra_config)}"
        )
        self.grpc_port = 0
        self.metrics_port = 0
        super().__init__(
            ["dcguard.collector", "serve", "--config", str(self.config_path)],
            workdir / "collector.log",
        )

    def start(self) -> None:
        """Start (again, on the same ports once they are known) and wait until it listens."""
        if self.grpc_port:
            self.args = [
                "dcguard.collector",
                "serve",
                "--config",
                str(self.config_path),
                "--grpc-listen",
                f"127.0.0.1:{self.grpc_port}",
                "--metrics-listen",
                f"127.0.0.1:{self.metrics_port}",
            ]
        seen = len(LISTENING.findall(self.log()))
        super().start()

        def listening() -> re.Match[str] | None:
            if not self.running:
                raise AssertionError(f"collector exited:\n{self.log()[-3000:]}")
            matches = list(LISTENING.finditer(self.log()))
            return matches[-1] if len(matches) > seen else None

        match = wait_for(listening, message="the collector to listen")
        self.grpc_port, self.metrics_port = int(match.group(2)), int(match.group(4))

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return str(response.read().decode())

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(self.metrics_text())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("dcguard.collector", *args, "--config", str(self.config_path))


class Agent(Process):
    """dcguard-agent run against a collector, with its own state dir."""

    def __init__(
        self,
        workdir: Path,
        addresses: list[str],
        *,
        host: str = "testhost",
        department: str = "test-dept",
        interval: str = "200ms",
        extra_config: str = "",
        insecure: bool = True,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.config_path = workdir / "agent.toml"
        address_list = ", ".join(f'"{a}"' for a in addresses)
        self.config_path.write_text(
            "[agent]\n"
            f'host = "{host}"\n'
            f'department = "{department}"\n'
            f'interval = "{interval}"\n'
            f'state_dir = "{self.state_dir}"\n'
            "[collector]\n"
            f"addresses = [{address_list}]\n"
            f"insecure = {'true' if insecure else 'false'}\n"
            f'timeout = "2s"\n'
            f"{textwrap.dedent(extra_config)}"
        )
        super().__init__(
            ["dcguard.agent", "run", "--config", str(self.config_path)], workdir / "agent.log"
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("dcguard.agent", *args, "--config", str(self.config_path))
