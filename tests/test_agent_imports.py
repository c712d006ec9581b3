"""What `dcguard-agent run` loads, checked in a real run up to its first report.

The agent's RSS budget (docs/performance.md) depends on the run path not
importing what only other commands need: `cryptography` (enroll and
renewal), `importlib.metadata`, click (cli/main.py), and OpenSSL's libcrypto
through `ssl` or `_hashlib` (runtime/no_libcrypto.py). A child process runs the
real entry point with mTLS credentials, so the certificate renewer runs too, and lists
sys.modules once the first report is built and the renewer has read its
certificate; the test asserts on that list.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dcguard.agent.cli.main import plain_run_config
from dcguard.agent.trust.credentials import AgentTlsFiles
from tests.support import Agent
from tests.trust_support import issue, self_signed_ca

# Loaded on the run path: if these were missing the check below would be empty.
EXPECTED = (
    "grpc",
    "asyncio",
    "hashlib",
    "dcguard.agent.cycle.agent_loop",
    "dcguard.agent.trust.credentials",
    "dcguard.common.validity",
    "dcguard.v1.collector_pb2",
)
# Only other commands need these; each costs the long-running agent RSS.
FORBIDDEN = (
    "cryptography",
    "importlib.metadata",
    "click",
    "difflib",
    "ssl",
    "_ssl",
    "_hashlib",
    "dcguard.common.pki",
    "dcguard.agent.trust.pinning",
    "dcguard.agent.trust.keys",
    "dcguard.collector",
    # Translations load on the first sentence printed; `run` prints none.
    "gettext",
)

CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading
    from dcguard.agent.cli.main import main
    from dcguard.agent.runtime.no_libcrypto import load_without_libcrypto
    load_without_libcrypto()  # as main() does first: before the modules patched below
    from dcguard.agent.cycle import agent_loop as service
    from dcguard.agent.trust import credentials as tls

    renewer_read = threading.Event()
    read_validity = tls.AgentTlsFiles.validity
    def validity(self):
        try:
            return read_validity(self)
        finally:
            renewer_read.set()
    tls.AgentTlsFiles.validity = validity

    build_report = service.build_report
    listed = threading.Event()
    def first_report(*args, **kwargs):
        report = build_report(*args, **kwargs)
        if not listed.is_set():
            listed.set()
            renewer_read.wait(30)
            print(json.dumps({"renewer_read": renewer_read.is_set(),
                              "modules": sorted(sys.modules)}), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        return report
    service.build_report = first_report

    sys.argv = ["dcguard-agent", "run", "--config", sys.argv[1]]
    main()
""")


def _modules_at_first_report(agent: Agent) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(agent.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(line)
    assert answer["renewer_read"], "the renewer never read its certificate"
    return set(answer["modules"])


def _top_level(modules: set[str], name: str) -> bool:
    return any(module == name or module.startswith(name + ".") for module in modules)


def test_run_path_loads_no_x509_library_and_no_package_metadata(tmp_path):
    # Enrolled, so `run` starts the renewer; nothing listens on port 1.
    agent = Agent(tmp_path / "agent", ["127.0.0.1:1"], insecure=False)
    ca_key, ca_cert = self_signed_ca("imports-test-ca")
    now = datetime.datetime.now(datetime.timezone.utc)
    key_pem, cert_pem = issue(
        ca_key, ca_cert, "testhost", not_before=now, not_after=now + datetime.timedelta(days=90)
    )
    from cryptography.hazmat.primitives import serialization

    AgentTlsFiles(agent.state_dir).store(
        key_pem, cert_pem, ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    modules = _modules_at_first_report(agent)
    assert [name for name in EXPECTED if name not in modules] == []
    assert [name for name in FORBIDDEN if _top_level(modules, name)] == []


DEFAULT = Path("/etc/dcguard/agent.toml")


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["run", "--config", "a.toml"],
        ["run", "--config=a.toml"],
        ["run", "--config", "/x y/agent.toml"],
        ["run", "--config", "agent.toml=1"],
    ],
)
def test_a_plain_run_is_read_as_click_reads_it(args, monkeypatch):
    from dcguard.agent.cli import commands as cli
    from dcguard.agent.cycle import agent_loop as service

    seen: list[Path] = []
    monkeypatch.setattr(service, "run_from_file", seen.append)
    cli.cli.main(args=args, prog_name="dcguard-agent", standalone_mode=False)
    assert [plain_run_config(args, cli.DEFAULT_CONFIG)] == seen


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["collect"],
        ["run", "--help"],
        ["run", "-h"],
        ["run", "--config"],
        ["run", "--config", ""],
        ["run", "--config="],
        ["run", "--config", "--help"],
        ["run", "--config", "a", "--config", "b"],
        ["run", "--bogus"],
        ["run", "x"],
        ["--version"],
        ["run", "--conf", "a"],
        ["run", "--config=--odd"],
    ],
)
def test_anything_else_is_left_to_click(args):
    assert plain_run_config(args, DEFAULT) is None


def test_run_failures_are_one_line_without_click(tmp_path):
    bad = tmp_path / "agent.toml"
    bad.write_text("[agent]\ninterval = 'soon'\n")
    for args in (["run", "--config", str(bad)], ["run", "--config", str(tmp_path / "none")]):
        result = subprocess.run(
            [sys.executable, "-m", "dcguard.agent", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("dcguard-agent: ") and "Traceback" not in line
