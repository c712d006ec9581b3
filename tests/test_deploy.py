"""The central stack's compose file, the example Prometheus config and the Ansible role.

Docker is not available to the tests, so the compose file is checked for what
would break `docker compose up`: every file it mounts or builds from exists,
the services it wires together name each other correctly, and the configs it
mounts pass their own tools (promtool, the collector's config loader). The
Ansible role runs for real against this machine (connection local) into a
temp prefix, twice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcguard.collector.config import load_config
from tests.test_install import bundle  # noqa: F401  (the cached offline bundle)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "deploy/compose"
ANSIBLE = ROOT / "deploy/ansible"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE_DIR / "compose.yml").read_text()))


def host_path(spec: str) -> tuple[Path, str]:
    source, target = spec.split(":")[:2]
    return (COMPOSE_DIR / source).resolve(), target


def test_compose_mounts_and_builds_only_what_exists() -> None:
    services = compose()["services"]
    assert set(services) == {"collector", "prometheus", "alertmanager", "grafana"}
    named_volumes = set(compose().get("volumes", {}))
    for name, service in services.items():
        for spec in service.get("volumes", []):
            source = spec.split(":")[0]
            if source in named_volumes:
                continue
            path, _ = host_path(spec)
            assert path.exists(), f"{name} mounts {source}, which does not exist"
            assert spec.endswith(":ro"), f"{name}: configs are mounted read-only ({spec})"
        if "build" in service:
            context = (COMPOSE_DIR / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file()
            assert (context / "pyproject.toml").is_file()
        else:
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), (
                f"{name}: pin the image version"
            )


def test_compose_prometheus_config_is_valid_and_wired() -> None:
    services = compose()["services"]
    mounts = dict(
        host_path(v)[::-1] for v in services["prometheus"]["volumes"] if v.startswith(".")
    )
    config_dir = mounts["/etc/prometheus"]
    result = subprocess.run(
        ["promtool", "check", "config", str(config_dir / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "dcguard-collector"]
    assert job["honor_labels"] is True  # backup series carry their own `job` label
    (target,) = job["static_configs"][0]["targets"]
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    collector_toml = load_config(host_path(services["collector"]["volumes"][0])[0])
    assert target == f"collector:{collector_toml.metrics_listen.rsplit(':', 1)[1]}"
    assert alertmanager.split(":")[0] in services


def test_compose_grafana_gets_the_dashboards_where_provisioning_looks() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {
        target: path
        for path, target in map(host_path, grafana["volumes"])
        if target.startswith("/")
    }
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dcguard.yml").read_text()
    )["providers"][0]
    assert mounts[provider["options"]["path"]] == ROOT / "dashboards"
    assert mounts["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert "GF_SECURITY_ADMIN_PASSWORD" in grafana["environment"]
    assert ":?" in grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]  # no default password


def test_ansible_playbook_syntax() -> None:
    assert ANSIBLE_PLAYBOOK.exists(), "ansible-core is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--syntax-check", "-i", "inventory.example.ini", "site.yml"],
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_role_installs_and_is_idempotent(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The role against this machine (connection local): installs, then a re-run changes nothing."""
    assert ANSIBLE_PLAYBOOK.exists()
    tarball: Path = request.getfixturevalue("bundle")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[so_tu_phap]\n"
        f"db01 ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        "[dcguard_agents:children]\nso_tu_phap\n"
    )
    extra = {
        "dcguard_bundle": str(tarball),
        "dcguard_department": "so-tu-phap",
        "dcguard_collectors": ["collector.example:4740"],
        "dcguard_user": "dcguard-itest",
        "dcguard_prefix": f"{tmp_path}/opt/dcguard-agent",
        "dcguard_config_dir": f"{tmp_path}/etc/dcguard",
        "dcguard_state_dir": f"{tmp_path}/var/lib/dcguard-agent",
        "dcguard_unit_dir": f"{tmp_path}/etc/systemd/system",
        "dcguard_bin_dir": f"{tmp_path}/usr/local/bin",
        "dcguard_python": "/usr/bin/python3",
        "dcguard_remote_bundle_dir": f"{tmp_path}/bundle",
    }
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra))
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
    }
    existed = (
        shutil.which("id")
        and subprocess.run(["id", "dcguard-itest"], capture_output=True, check=False).returncode
        == 0
    )

    def playbook(*flags: str) -> str:
        result = subprocess.run(
            [
                str(ANSIBLE_PLAYBOOK),
                "-i",
                str(inventory),
                str(ANSIBLE / "site.yml"),
                "-e",
                f"@{tmp_path / 'extra.yml'}",
                *flags,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        return result.stdout

    try:
        # --check on a fresh host: runs clean and touches nothing.
        fresh_check = playbook("--check")
        assert not (tmp_path / "opt").exists() and not (tmp_path / "bundle").exists()
        runs = [playbook(), playbook()]
        installed_check = playbook("--check")  # and on an installed one
    finally:
        if not existed:
            subprocess.run(["userdel", "dcguard-itest"], capture_output=True, check=False)
    for checked in (fresh_check, installed_check):
        assert re.search(r"db01\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", checked), (
            checked[-1500:]
        )
    assert re.search(r"db01\s+: ok=\d+\s+changed=[1-9]", runs[0]), runs[0][-1500:]
    assert re.search(r"db01\s+: ok=\d+\s+changed=0\s", runs[1]), runs[1][-1500:]
    assert (tmp_path / "usr/local/bin/dcguard-agent").is_symlink()
    agent = subprocess.run(
        [
            f"{tmp_path}/opt/dcguard-agent/bin/dcguard-agent",
            "check-config",
            "--no-credentials",
            "--config",
            f"{tmp_path}/etc/dcguard/agent.toml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert agent.returncode == 0, agent.stderr
    assert "host db01, department so-tu-phap" in agent.stdout
    assert not (tmp_path / "bundle").exists()


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: apt-get install shellcheck (tests/run.sh does)"
    scripts = [ROOT / "deploy/install-agent.sh", ROOT / "deploy/make-bundle.sh"]
    result = subprocess.run(
        [shellcheck, *map(str, scripts)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout
