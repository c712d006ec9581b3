"""The agent's and the collector's units, and the Ansible role, under a real systemd.

Each test boots a throwaway copy of a cached Debian 12 root (tests/nspawn.py)
with systemd-nspawn: systemd is PID 1 there, the hardened units run as
written (ProtectSystem=strict, capabilities, SystemCallFilter), and what they
break shows up here. The container shares this machine's network namespace,
so it reaches a collector on 127.0.0.1; the install itself runs inside
`unshare --net`, with no network at all, as on a server without internet.

    pytest -m nspawn        # only these (the first run builds the root: minutes)
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dcguard.agent.sources import load_all
from tests import nspawn
from tests.guards import NOT_INSTALLABLE
from tests.support import metric, parse_metrics, wait_for
from tests.test_install import bundle  # noqa: F401  (the cached offline bundle)
from tests.trust_support import TlsCollector

pytestmark = [pytest.mark.nspawn, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE = ROOT / "deploy/ansible"
HOST = {"host": "db01", "department": "so-tu-phap"}
AGENT = "/opt/dcguard-agent/bin/dcguard-agent"


@pytest.fixture(scope="session")
def image(request: pytest.FixtureRequest) -> Path:
    """The cached Debian 12 root; its first build prints its progress past pytest's capture."""
    reason = nspawn.why_not_here()
    if reason:
        pytest.skip(f"cannot boot a systemd container here: {reason}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        image = nspawn.root_image()
    reason = nspawn.cannot_run(image)
    if reason:
        pytest.skip(reason)
    return image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def container(
    image: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[nspawn.Container]:
    """A booted container with the bundle unpacked in /var/tmp; powered off at the end."""
    tarball: Path = request.getfixturevalue("bundle")
    name = f"dcg-{request.node.name[5:25].replace('_', '-')}"
    limit = nspawn.nesting_limits(tmp_path)
    if limit:
        pytest.skip(f"{NOT_INSTALLABLE}: {limit}")
    with nspawn.Container(image, tmp_path / "machine", name) as machine:
        # Copied to the server and unpacked there with its tar, as the guide says.
        shutil.copy(tarball, machine.root / "var/tmp" / tarball.name)
        machine.run("tar", "-xzf", f"/var/tmp/{tarball.name}", "-C", "/var/tmp")
        yield machine


def installer(machine: nspawn.Container) -> str:
    (script,) = (machine.root / "var/tmp").glob("dcguard-agent-*/install-agent.sh")
    return "/" + str(script.relative_to(machine.root))


NO_NETWORK = """
import socket, sys, urllib.parse
interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
routes = open("/proc/net/route").readlines()[1:]
host = urllib.parse.urlsplit(sys.argv[1]).hostname
try:
    socket.create_connection((host, 80), 5)
    reached = True
except OSError:
    reached = False
print(interfaces, len(routes), reached)
"""


def install_offline(machine: nspawn.Container, *args: str) -> str:
    """install-agent.sh in a network namespace of its own: no route to any registry."""
    offline = ("unshare", "--net")
    probe = machine.run(*offline, "python3", "-c", NO_NETWORK, nspawn.debian_mirror())
    assert probe.stdout.split("\n")[0] == "['lo'] 0 False", probe.stdout
    return machine.run(*offline, "bash", installer(machine), *args, timeout=300).stdout


DEFAULT_SOURCES = {name for name, spec in load_all().items() if spec.default_enabled}
CAP_SYS_RAWIO = 17
CAP_DAC_READ_SEARCH = 2
SECCOMP_MODE_FILTER = "2"


def assert_sandboxed(machine: nspawn.Container, unit: str, capabilities: int) -> None:
    """The unit's main process: its user, a seccomp filter, its capabilities, a read-only /."""
    pid = machine.run("systemctl", "show", "-P", "MainPID", unit).stdout.strip()
    status = dict(
        line.split(":\t", 1)
        for line in machine.run("cat", f"/proc/{pid}/status").stdout.splitlines()
        if ":\t" in line
    )
    user = machine.run("id", "-u", unit).stdout.strip()
    assert status["Uid"].split()[0] == user, status
    assert status["NoNewPrivs"].strip() == "1", status
    assert status["Seccomp"].strip() == SECCOMP_MODE_FILTER, status
    assert int(status["CapBnd"], 16) == capabilities, status
    mounts = machine.run("cat", f"/proc/{pid}/mountinfo").stdout.splitlines()
    root = [line.split() for line in mounts if line.split()[4] == "/"][-1]
    assert "ro" in root[5].split(","), root


def test_agent_unit_reports_restarts_and_stops_under_systemd(
    container: nspawn.Container, tmp_path: Path
) -> None:
    """Offline install, mTLS enrollment, the hardened unit reporting; kill -9, stop."""
    collector = TlsCollector(tmp_path / "collector")
    collector.start()
    try:
        out = install_offline(
            container,
            "--department",
            "so-tu-phap",
            "--host",
            "db01",
            "--collector",
            collector.grpc_address,
        )
        assert "installed dcguard-agent" in out, out
        # The installer enabled the unit; an agent without credentials is not started.
        assert container.run("systemctl", "is-enabled", "dcguard-agent").stdout.strip() == "enabled"
        # Reports every 2 s instead of 15 s: an operator's edit, kept by upgrades.
        container.run(
            "sed", "-i", r's/^\[agent\]$/[agent]\ninterval = "2s"/', "/etc/dcguard/agent.toml"
        )
        container.run(
            "runuser",
            "-u",
            "dcguard-agent",
            "--",
            AGENT,
            "enroll",
            "--config",
            "/etc/dcguard/agent.toml",
            "--token",
            collector.token("db01", "so-tu-phap"),
            "--ca-fingerprint",
            collector.fingerprint,
            "--address",
            collector.enroll_address,
        )
        # A department share only root may enter (like a PostgreSQL cluster's 0700
        # directory): discovery and the ransomware watcher must still see into it.
        share = "/srv/ke-toan"
        container.run(
            "sh",
            "-c",
            f"umask 077; for d in 0 1 2 3 4 5; do mkdir -p {share}/phong-$d; "
            f"for f in 0 1 2 3; do seq 1 400 > {share}/phong-$d/cong-van-$f.txt; done; done",
        )
        container.run("systemctl", "start", "dcguard-agent", timeout=90)
        assert container.run("systemctl", "is-active", "dcguard-agent").stdout.strip() == "active"

        def up() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            samples = collector.metrics()  # {} (falsy: wait on) until db01 is up
            return samples if metric(samples, "dcguard_agent_up", **HOST) == 1 else {}

        samples = wait_for(up, timeout=60, message="db01 up on the collector")
        # Every source the agent runs succeeds under the hardened unit.
        sources = {
            dict(labels)["source"]: value
            for (name, labels), value in samples.items()
            if name == "dcguard_agent_source_success" and dict(labels)["host"] == "db01"
        }
        assert set(sources) == DEFAULT_SOURCES, samples
        assert {s for s, ok in sources.items() if ok != 1} == set(), (
            sources,
            container.journal("dcguard-agent"),
        )
        # Discovered under the unit (read-only, CAP_DAC_READ_SEARCH): in no backup job.
        location = {"path": share, "kind": "srv", **HOST}
        assert metric(samples, "dcguard_data_location_backed_up", **location) == 0, samples
        # The watcher watches it: an encryption there pages. The filesystem is read-only
        # for the agent, so no canary: said in one line, the source still succeeds.
        sim = container.root / "var/tmp/ransom_sim.py"
        shutil.copy(Path(__file__).parent / "ransom_sim.py", sim)
        container.run("python3", "/var/tmp/ransom_sim.py", share, "--delay", "0.05")
        wait_for(
            lambda: metric(
                collector.metrics(),
                "dcguard_security_events_total",
                type="ransomware_suspected",
                **HOST,
            ),
            timeout=60,
            message="ransomware_suspected from the share under the unit",
        )
        journal = container.journal("dcguard-agent")
        assert f"no canary in {share}" in journal, journal[-3000:]
        assert_sandboxed(
            container,
            "dcguard-agent",
            capabilities=(1 << CAP_SYS_RAWIO) | (1 << CAP_DAC_READ_SEARCH),
        )
        assert metric(samples, "dcguard_filesystem_size_bytes", mountpoint="/", **HOST)
        # The security sources read the server's logs from inside the sandbox: an account
        # made on the server now reaches the collector as an event. They read
        # /var/log/auth.log here (rsyslog, group adm), not the journal: nspawn gives
        # the container a boot ID of its own by a mount over
        # /proc/sys/kernel/random/boot_id, which the unit's fresh /proc
        # (ProtectKernelTunables=, ProtectControlGroups=) does not carry, and
        # `journalctl --follow` under a boot ID other than journald's prints nothing
        # new. On a real server both see the kernel's one boot ID.
        container.run("useradd", "--system", "--no-create-home", "intruder")
        wait_for(
            lambda: metric(
                collector.metrics(), "dcguard_security_events_total", type="user_created", **HOST
            ),
            timeout=60,
            message="the user_created event from the container's journal",
        )

        # kill -9 through systemd: it restarts the agent; nothing is lost.
        restarts = int(
            container.run("systemctl", "show", "-P", "NRestarts", "dcguard-agent").stdout
        )
        stored = metric(samples, "dcguard_agent_reports_stored_total", **HOST) or 0
        container.run("systemctl", "kill", "-s", "SIGKILL", "dcguard-agent")
        wait_for(
            lambda: (
                int(container.run("systemctl", "show", "-P", "NRestarts", "dcguard-agent").stdout)
                > restarts
            ),
            timeout=30,
            message="systemd to restart the killed agent",
        )
        wait_for(
            lambda: (
                (metric(collector.metrics(), "dcguard_agent_reports_stored_total", **HOST) or 0)
                >= stored + 3
            ),
            timeout=60,
            message="reports from the restarted agent",
        )
        container.run("systemctl", "stop", "dcguard-agent", timeout=60)
        assert (
            container.run("systemctl", "is-active", "dcguard-agent", check=False).stdout.strip()
            == "inactive"
        )
        journal = container.journal("dcguard-agent")
        assert "dcguard-agent stopped;" in journal, journal[-3000:]
        assert metric(collector.metrics(), "dcguard_agent_reports_lost_total", **HOST) == 0
    finally:
        collector.stop()


def test_unenrolled_agent_unit_stops_instead_of_restarting(container: nspawn.Container) -> None:
    """Exit 2 (not enrolled) is not something a restart can fix: systemd must not loop on it."""
    install_offline(
        container, "--department", "so-tu-phap", "--host", "db01", "--collector", "127.0.0.1:4740"
    )
    started = container.run("systemctl", "start", "dcguard-agent", timeout=90, check=False)
    assert started.returncode != 0
    # Longer than the unit's RestartSec=5s: a restart would have happened by now.
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert (
            container.run("systemctl", "show", "-P", "NRestarts", "dcguard-agent").stdout.strip()
            == "0"
        ), container.journal("dcguard-agent")
        time.sleep(1)
    assert (
        container.run("systemctl", "is-failed", "dcguard-agent", check=False).stdout.strip()
        == "failed"
    )
    assert "enroll" in container.journal("dcguard-agent")


def test_collector_unit_serves_and_reports_readiness_under_systemd(
    container: nspawn.Container,
) -> None:
    """Option B of the operator's guide, step by step, offline, then the unit under systemd."""
    (wheels,) = (container.root / "var/tmp").glob("dcguard-agent-*/wheels")
    wheels_in = "/" + str(wheels.relative_to(container.root))
    container.run("unshare", "--net", "python3", "-m", "venv", "/opt/dcguard-collector")
    container.run(
        "unshare",
        "--net",
        "/opt/dcguard-collector/bin/pip",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        wheels_in,
        "dcguard",
        timeout=300,
    )
    container.run(
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "dcguard-collector",
    )
    container.run(
        "install",
        "-d",
        "-o",
        "dcguard-collector",
        "-g",
        "dcguard-collector",
        "-m",
        "0700",
        "/var/lib/dcguard-collector",
    )
    grpc, metrics, enroll = free_port(), free_port(), free_port()
    config = container.root / "etc/dcguard/collector.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "[server]\n"
        f'grpc_listen = "127.0.0.1:{grpc}"\n'
        f'metrics_listen = "127.0.0.1:{metrics}"\n'
        'data_dir = "/var/lib/dcguard-collector"\n'
        "[tls]\n"
        f'enroll_listen = "127.0.0.1:{enroll}"\n'
    )
    collector = "/opt/dcguard-collector/bin/dcguard-collector"
    init = container.run(
        "runuser",
        "-u",
        "dcguard-collector",
        "--",
        collector,
        "ca",
        "init",
        "--config",
        "/etc/dcguard/collector.toml",
    )
    assert "CA fingerprint: sha256:" in init.stdout
    unit = container.root / "etc/systemd/system/dcguard-collector.service"
    unit.write_text((ROOT / "deploy/systemd/dcguard-collector.service").read_text())
    container.run("systemctl", "daemon-reload")
    # Type=notify: start returns once the collector has said READY=1.
    container.run("systemctl", "enable", "--now", "dcguard-collector", timeout=150)
    assert (
        container.run("systemctl", "is-active", "dcguard-collector").stdout.strip() == "active"
    ), container.journal("dcguard-collector")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as page:
        samples = parse_metrics(page.read().decode())
    assert metric(samples, "dcguard_collector_reports_received_total") == 0
    assert_sandboxed(container, "dcguard-collector", capabilities=0)
    container.run("systemctl", "stop", "dcguard-collector", timeout=60)
    assert (
        container.run("systemctl", "show", "-P", "Result", "dcguard-collector").stdout.strip()
        == "success"
    )


def ssh_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def test_ansible_role_check_mode_and_rerun_against_a_systemd_host(
    image: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """ansible-playbook over ssh (sshd in the container on a loopback port of this machine)."""
    playbook = Path(__import__("sys").executable).parent / "ansible-playbook"
    assert playbook.exists(), "ansible-core is a dev dependency: pip install -e '.[dev]'"
    tarball: Path = request.getfixturevalue("bundle")
    port = free_port()
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )

    def with_sshd(root: Path) -> None:
        (root / "etc/ssh/sshd_config.d/dcguard-test.conf").write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
        )
        (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
        (root / "root/.ssh/authorized_keys").write_text(key.with_suffix(".pub").read_text())
        wants = root / "etc/systemd/system/multi-user.target.wants/ssh.service"
        wants.symlink_to("/lib/systemd/system/ssh.service")

    with nspawn.Container(
        image, tmp_path / "machine", "dcg-ansible", before_boot=with_sshd
    ) as machine:
        wait_for(lambda: ssh_ready(port), timeout=30, message="sshd in the container")
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(
            "[so_tu_phap]\n"
            f"db01 ansible_host=127.0.0.1 ansible_port={port} ansible_user=root "
            f"ansible_ssh_private_key_file={key} ansible_python_interpreter=/usr/bin/python3\n"
            "[dcguard_agents:children]\nso_tu_phap\n"
        )
        extra = tmp_path / "extra.yml"
        extra.write_text(
            yaml.safe_dump(
                {
                    "dcguard_bundle": str(tarball),
                    "dcguard_department": "so-tu-phap",
                    "dcguard_collectors": ["127.0.0.1:4740"],
                }
            )
        )
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible"),
            "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
            # One ssh connection for the whole play (pipelining: no temp files to copy);
            # its master is closed below, pass or fail, and dies alone after 60 s anyway.
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s "
            "-o UserKnownHostsFile=/dev/null",
        }

        def play(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    str(playbook),
                    "-i",
                    str(inventory),
                    str(ANSIBLE / "site.yml"),
                    "-e",
                    f"@{extra}",
                    *args,
                ],
                capture_output=True,
                text=True,
                timeout=600,
                env=env,
                check=False,
            )

        def recap(result: subprocess.CompletedProcess[str]) -> str:
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
            match = re.search(r"^db01\s+:(.*)$", result.stdout, re.M)
            assert match, result.stdout[-1500:]
            return match.group(1)

        try:
            assert re.search(r"changed=[1-9]", recap(play())), "the first run installs"
            checked = play("--check")
            second = recap(play())
        finally:
            for master in (tmp_path / "cp").glob("*"):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={master}", "-O", "exit", "db01"],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        assert re.search(r"changed=0\s", second), second
        assert machine.run("systemctl", "is-enabled", "dcguard-agent").stdout.strip() == "enabled"
        # The role ran without a token: the file is right, the agent not enrolled yet.
        checked_config = machine.run(
            AGENT, "check-config", "--no-credentials", "--config", "/etc/dcguard/agent.toml"
        )
        assert "host db01, department so-tu-phap" in checked_config.stdout
        not_enrolled = machine.run(
            AGENT, "check-config", "--config", "/etc/dcguard/agent.toml", check=False
        )
        assert not_enrolled.returncode == 2
        assert "enroll the agent first" in not_enrolled.stderr
        assert re.search(r"changed=0\s.*failed=0\s", recap(checked)), checked.stdout[-1500:]


def test_the_root_comes_from_the_mirror_apt_uses_here(tmp_path: Path) -> None:
    """deb822 (Debian 12's default) and one-line lists; the bookworm entry, not another suite's."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert nspawn.debian_mirror(apt) == "http://mirror.example/debian"
    (apt / "sources.list.d/debian.sources").unlink()
    (apt / "sources.list").write_text(
        "deb http://old.example/debian bullseye main\n"
        "deb [arch=amd64] http://list.example/debian bookworm main\n"
    )
    assert nspawn.debian_mirror(apt) == "http://list.example/debian"
    (apt / "sources.list").write_text("")
    assert nspawn.debian_mirror(apt) == nspawn.DEFAULT_MIRROR
