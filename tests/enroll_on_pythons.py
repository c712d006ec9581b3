"""Enroll and run the agent under every Python found, against one mTLS collector.

Each interpreter takes a different path to the collector's unverified chain
(3.9: the TLS 1.2 Certificate message; 3.10-3.12: `_sslobj`; 3.13+: the
public method), so each is worth proving. Not a pytest module: which
interpreters exist depends on the machine. CI can run it:

    .venv/bin/python -m tests.enroll_on_pythons /root/.pyenv/versions/3.9*/bin/python3 ...

Exit 0 only if, on every interpreter, a wrong fingerprint is refused and a
right one enrolls an agent that then shows up on /metrics over mTLS.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import Agent, metric, wait_for
from tests.trust_support import TlsCollector

ROOT = Path(__file__).resolve().parent.parent


def check(python: str, collector: TlsCollector, work: Path) -> str:
    venv = work / f"venv-{Path(python).name}-{abs(hash(python))}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", str(ROOT)], check=True, capture_output=True
    )
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    host = "py" + version.replace(".", "-")
    agent = Agent(work / host, [collector.grpc_address], host=host, insecure=False)
    enroll = [
        str(venv / "bin/dcguard-agent"),
        "enroll",
        "--config",
        str(agent.config_path),
        "--address",
        collector.enroll_address,
    ]
    wrong = subprocess.run(
        [*enroll, "--token", "x", "--ca-fingerprint", "sha256:" + "1" * 64],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1 and "refusing to enroll" in wrong.stderr, wrong.stderr
    right = subprocess.run(
        [*enroll, "--token", collector.token(host), "--ca-fingerprint", collector.fingerprint],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert right.returncode == 0, right.stderr
    run = subprocess.Popen(
        [str(venv / "bin/dcguard-agent"), "run", "--config", str(agent.config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: metric(collector.metrics(), "dcguard_agent_up", host=host) == 1,
            timeout=30,
            message=f"the agent on Python {version} over mTLS",
        )
    finally:
        run.terminate()
        run.wait(10)
    return version


def main(pythons: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        collector = TlsCollector(work / "collector")
        collector.start()
        try:
            for python in pythons:
                print(
                    f"Python {check(python, collector, work)}: pin refused when wrong, "
                    "enrolled and delivering over mTLS"
                )
        finally:
            collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
