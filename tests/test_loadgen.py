"""The load generator's CLI, as the benchmarks drive it: production-shaped against a real collector.

bench/collector_scale.py and issue 16's PostgreSQL benchmark run
bench/loadgen.py as a command and read its JSON line. Here it runs small:
20 agents, each with a certificate minted by the collector's own CA and
registry (bench/agent_certs.py), over mTLS to a real collector, two rounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.agent_certs import mint
from bench.realistic import agent
from tests.support import metric
from tests.trust_support import TlsCollector

ROOT = Path(__file__).resolve().parent.parent
AGENTS = 20


def test_every_simulated_agent_delivers_over_its_own_certificate(tmp_path):
    collector = TlsCollector(tmp_path / "collector")
    certs = tmp_path / "certs"
    assert mint(collector.config_path, AGENTS, certs)["recorded"] == AGENTS
    collector.start()
    try:
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "loadgen.py"),
                "--target",
                collector.grpc_address,
                "--agents",
                str(AGENTS),
                "--duration",
                "2",
                "--interval",
                "1",
                "--ca",
                str(certs / "ca.crt"),
                "--certs",
                str(certs),
                "--processes",
                "2",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["mode"] == "mtls-gzip-per-agent"
        assert result["failures"] == {}
        assert result["stored_ok"] == 2 * AGENTS
        assert "connected: 20 agents" in run.stderr
        page = collector.metrics()
        for i in range(AGENTS):
            host = agent(i).host  # the certificate's CN: mTLS decided who it was
            assert metric(page, "dcguard_agent_reports_stored_total", host=host) == 2
            assert not metric(page, "dcguard_agent_reports_lost_total", host=host)
        assert collector.rejected("unauthenticated") == 0
        assert collector.rejected("permission_denied") == 0
    finally:
        collector.stop()


def test_a_certificate_directory_without_the_agents_is_one_line(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--target",
            "127.0.0.1:1",
            "--ca",
            str(tmp_path / "ca.crt"),
            "--certs",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .endswith("is missing: mint certificates with bench/agent_certs.py")
    )


def test_first_agent_drives_only_its_own_share_of_the_hosts(tmp_path):
    """Two generators on collectors of one store each take a disjoint share (--first-agent)."""
    collector = TlsCollector(tmp_path / "collector")
    certs = tmp_path / "certs"
    mint(collector.config_path, AGENTS, certs)
    collector.start()
    try:
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "loadgen.py"),
                "--target",
                collector.grpc_address,
                "--agents",
                str(AGENTS // 2),
                "--first-agent",
                str(AGENTS // 2),
                "--duration",
                "1",
                "--interval",
                "1",
                "--ca",
                str(certs / "ca.crt"),
                "--certs",
                str(certs),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["failures"] == {}
        assert result["stored_ok"] == AGENTS // 2
        page = collector.metrics()
        for i in range(AGENTS):
            stored = metric(page, "dcguard_agent_reports_stored_total", host=agent(i).host)
            assert stored == (1 if i >= AGENTS // 2 else None), agent(i).host
    finally:
        collector.stop()


def test_a_negative_first_agent_is_one_line(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--target",
            "127.0.0.1:1",
            "--plaintext",
            "--first-agent",
            "-1",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "--first-agent ≥ 0" in run.stderr.strip().splitlines()[-1]
