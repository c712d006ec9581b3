"""The offline bundle, installed for real as root into a temp prefix with no network at all.

The bundle is built once per source tree (it downloads wheels from PyPI) and
cached under .cache/bundle/; the install runs in a fresh network namespace
(unshare --net), so anything that tried a registry would fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guards import NOT_INSTALLABLE

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bundle"
TEST_USER = "dcguard-itest"


def interpreter(*candidates: str) -> str | None:
    """The real path of the first candidate that runs (pyenv shims may not)."""
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if not found:
            continue
        result = subprocess.run(
            [found, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout.strip()
    return None


PYENV = Path.home() / ".pyenv/versions"
# The Debian interpreter, and the oldest one the agent supports when present.
PYTHONS = [
    p
    for p in (
        interpreter("/usr/bin/python3"),
        interpreter("python3.9", *map(str, PYENV.glob("3.9*/bin/python3.9"))),
    )
    if p
]


def source_key() -> str:
    """A hash of everything that goes into the bundle."""
    digest = hashlib.sha256()
    files = [
        ROOT / "pyproject.toml",
        ROOT / "deploy/make-bundle.sh",
        ROOT / "deploy/install-agent.sh",
        ROOT / "deploy/systemd/dcguard-agent.service",
    ]
    for top in ("agent", "collector", "proto"):
        files += sorted(
            p for p in (ROOT / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The bundle tarball for this source tree: built by deploy/make-bundle.sh, then cached."""
    out = CACHE / source_key()
    found = sorted(out.glob("dcguard-agent-bundle-*.tar.gz"))
    if found:
        return found[0]
    for stale in CACHE.glob("*"):  # bundles of older source trees
        shutil.rmtree(stale, ignore_errors=True)
    result = subprocess.run(
        ["bash", str(ROOT / "deploy/make-bundle.sh"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def extract(archive: Path, dest: Path) -> None:
    """Unpack a tarball refusing anything outside dest, on every Python the suite runs on.

    tarfile's filter="data" does exactly this but arrived in 3.11.4 (and 3.9.17,
    3.10.12): Debian 12's 3.11.2 has no filter argument. There the members are
    checked here instead: regular files and directories only, relative paths
    that stay inside dest.
    """
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if (
                not (member.isfile() or member.isdir())
                or Path(member.name).is_absolute()
                or not target.is_relative_to(dest.resolve())
            ):
                raise AssertionError(f"{archive}: refusing to extract {member.name!r}")
        tar.extractall(dest)  # noqa: S202 - every member was checked above


def offline(argv: list[str]) -> list[str]:
    """argv run in a new network namespace: no route to any registry (nor anywhere)."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    assert probe.returncode == 0, f"unshare --net failed (run as root): {probe.stderr!r}"
    return ["unshare", "--net", *argv]


@pytest.fixture
def installer(tmp_path: Path, bundle: Path) -> Iterator[tuple[Path, Path]]:
    """(install-agent.sh of the extracted bundle, tmp root for the install's paths)."""
    assert os.geteuid() == 0, "the installer test runs as root (it creates a user)"
    extract(bundle, tmp_path / "bundle")
    (script,) = (tmp_path / "bundle").glob("dcguard-agent-*/install-agent.sh")
    existed = subprocess.run(["id", TEST_USER], capture_output=True, check=False).returncode == 0
    yield script, tmp_path / "root"
    if not existed:
        subprocess.run(["userdel", TEST_USER], capture_output=True, check=False)


def install(
    script: Path, root: Path, *args: str, python: str = "/usr/bin/python3"
) -> subprocess.CompletedProcess[str]:
    argv = [
        "bash",
        str(script),
        "--prefix",
        f"{root}/opt/dcguard-agent",
        "--config-dir",
        f"{root}/etc/dcguard",
        "--state-dir",
        f"{root}/var/lib/dcguard-agent",
        "--unit-dir",
        f"{root}/etc/systemd/system",
        "--bin-dir",
        f"{root}/usr/local/bin",
        "--user",
        TEST_USER,
        "--python",
        python,
        *args,
    ]
    # A clean environment, as from a root shell: no venv, no pip config of this machine.
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        offline(argv), capture_output=True, text=True, timeout=300, env=env, check=False
    )


def agent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            f"{root}/opt/dcguard-agent/bin/dcguard-agent",
            *args,
            "--config",
            f"{root}/etc/dcguard/agent.toml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


FIRST = (
    "--department",
    "so-tu-phap",
    "--host",
    "db01",
    "--collector",
    "collector.example:4740,backup-collector.example:4740",
)


@pytest.mark.parametrize("python", PYTHONS)
def test_offline_install_then_upgrade_in_place(installer: tuple[Path, Path], python: str) -> None:
    script, root = installer
    first = install(script, root, *FIRST, python=python)
    assert first.returncode == 0, first.stdout + first.stderr

    checked = agent(root, "check-config", "--no-credentials")
    assert checked.returncode == 0, checked.stderr
    assert "host db01, department so-tu-phap" in checked.stdout
    assert "not enrolled yet" in checked.stdout
    unenrolled = agent(root, "check-config")  # what `run`, started by the unit, would meet
    assert unenrolled.returncode == 2 and "enroll the agent first" in unenrolled.stderr
    report = json.loads(agent(root, "collect", "--json").stdout)
    assert any(fs["mountpoint"] == "/" for fs in report["filesystems"])
    assert all(s["success"] for s in report["sources"])
    version = subprocess.run(
        [f"{root}/opt/dcguard-agent/bin/python", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.strip() == str(
        subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )

    config = root / "etc/dcguard/agent.toml"
    assert (
        'addresses = ["collector.example:4740", "backup-collector.example:4740"]'
        in config.read_text()
    )
    unit = (root / "etc/systemd/system/dcguard-agent.service").read_text()
    assert f"ExecStart={root}/opt/dcguard-agent/bin/dcguard-agent run --config {config}" in unit
    assert f"ReadWritePaths={root}/var/lib/dcguard-agent" in unit
    state = root / "var/lib/dcguard-agent"
    assert (state.stat().st_mode & 0o777) == 0o700
    assert state.owner() == TEST_USER

    # The operator edits the config, the agent accumulates state; a code file
    # of the installed package is changed to see the upgrade replace it.
    config.write_text(config.read_text() + "# edited by the operator\n")
    (state / "spool-marker").write_text("kept")
    installed_cli = next(
        (root / "opt/dcguard-agent/lib").glob(
            "python3*/site-packages/dcguard/agent/cli/commands.py"
        )
    )
    installed_cli.write_text(installed_cli.read_text() + "\n# stale\n")

    again = install(script, root, python=python)  # no flags needed the second time
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept" in again.stdout
    assert config.read_text().endswith("# edited by the operator\n")
    assert (state / "spool-marker").read_text() == "kept"
    assert "# stale" not in installed_cli.read_text()
    assert agent(root, "check-config", "--no-credentials").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--department is required"),
        (("--department", "d"), "--collector is required"),
        ((*FIRST, "--token", "abc"), "--token needs --ca-fingerprint"),
        ((*FIRST, "--token", "abc", "--ca-fingerprint", "md5:00"), "must look like sha256:"),
        ((*FIRST, "--prefix", "relative/path"), "paths must be absolute"),
        ((*FIRST, "--bogus"), "unknown argument --bogus"),
        ((*FIRST, "--department"), "--department needs a value"),
        (("--collector", "", *FIRST), "--collector needs a value"),
        ((*FIRST, "--python", "/nonexistent/python3"), "not found"),
    ],
)
def test_bad_arguments_are_one_line_and_install_nothing(
    installer: tuple[Path, Path], args: tuple[str, ...], message: str
) -> None:
    script, root = installer
    result = install(script, root, *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (root / "opt").exists()


def test_bad_department_is_refused_by_check_config(installer: tuple[Path, Path]) -> None:
    script, root = installer
    result = install(script, root, "--department", "Bad Name!", "--collector", "c:4740")
    assert result.returncode == 2
    assert "department" in result.stderr
    assert not (root / "etc/systemd/system/dcguard-agent.service").exists()


OUTSIDE = interpreter(
    "python3.8",
    *map(str, PYENV.glob("3.8*/bin/python3.8")),
    "python2",
    "python3.13",
    *map(str, PYENV.glob("3.13*/bin/python3.13")),
)


@pytest.mark.skipif(
    OUTSIDE is None,
    reason=f"{NOT_INSTALLABLE}: no Python older than 3.9 or "
    "newer than 3.12 on this machine, and Debian 12 packages none",
)
def test_python_outside_the_bundle_is_refused(installer: tuple[Path, Path]) -> None:
    script, root = installer
    old = OUTSIDE
    assert old is not None
    result = install(script, root, *FIRST, "--python", old)
    assert result.returncode == 2
    assert "3.9 to 3.12" in result.stderr


def test_failed_enrollment_stops_the_install_and_can_be_retried(
    installer: tuple[Path, Path],
) -> None:
    """No collector is reachable from the namespace: the installer says so and marks nothing."""
    script, root = installer
    result = install(
        script, root, *FIRST, "--token", "T0KEN", "--ca-fingerprint", "sha256:" + "ab" * 32
    )
    assert result.returncode == 2
    assert "enrollment failed" in result.stderr.splitlines()[-1]
    assert not (root / "var/lib/dcguard-agent/.enrolled-by-installer").exists()
    assert not (root / "etc/systemd/system/dcguard-agent.service").exists()
    # Installed, not enrolled; a re-run with a token enrolls.
    assert agent(root, "check-config", "--no-credentials").returncode == 0
    assert "enroll the agent first" in agent(root, "check-config").stderr


def test_the_command_is_on_path_and_uninstall_removes_what_install_made(
    installer: tuple[Path, Path],
) -> None:
    """The docs say `dcguard-agent status`: after the install that must be a command."""
    script, root = installer
    bin_dir = root / "usr/local/bin"
    first = install(script, root, *FIRST)
    assert first.returncode == 0, first.stdout + first.stderr
    link = bin_dir / "dcguard-agent"
    assert (
        link.is_symlink()
        and link.resolve() == (root / "opt/dcguard-agent/bin/dcguard-agent").resolve()
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    by_name = subprocess.run(
        ["dcguard-agent", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert by_name.returncode == 0 and "dcguard-agent" in by_name.stdout, by_name.stderr

    again = install(script, root)  # idempotent: the same link, nothing said about it
    assert again.returncode == 0, again.stdout + again.stderr
    assert "linked" not in again.stdout and link.is_symlink()
    assert sorted(p.name for p in bin_dir.iterdir()) == ["dcguard-agent"]

    (root / "var/lib/dcguard-agent/spool-marker").write_text("kept")
    gone = install(script, root, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not link.exists() and not link.is_symlink()
    assert not (root / "opt/dcguard-agent").exists()
    assert not (root / "etc/systemd/system/dcguard-agent.service").exists()
    # What the operator wrote and what the agent kept stay, and the output says where.
    assert (root / "etc/dcguard/agent.toml").exists()
    assert (root / "var/lib/dcguard-agent/spool-marker").read_text() == "kept"
    assert str(root / "var/lib/dcguard-agent") in gone.stdout
    twice = install(script, root, "--uninstall")
    assert twice.returncode == 0, twice.stdout + twice.stderr


def test_a_command_of_someone_else_on_path_is_not_replaced(installer: tuple[Path, Path]) -> None:
    script, root = installer
    foreign = root / "usr/local/bin/dcguard-agent"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("#!/bin/sh\necho not ours\n")
    result = install(script, root, *FIRST)
    assert result.returncode == 2
    assert str(foreign) in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert foreign.read_text().endswith("not ours\n")
    gone = install(script, root, "--uninstall")
    assert gone.returncode == 0 and foreign.exists()


PYTHON39 = interpreter("python3.9", *map(str, PYENV.glob("3.9*/bin/python3.9")))


@pytest.mark.skipif(
    PYTHON39 is None,
    reason=f"{NOT_INSTALLABLE}: no Python 3.9 on this machine, and Debian 12 packages none",
)
def test_the_bundle_installs_with_the_pip_of_debian_11(tmp_path: Path, bundle: Path) -> None:
    """Debian 11's python3 -m venv gives pip 20.3.4, which cannot install this project
    editable (pyproject only). The documented path for old servers, the bundle's
    wheelhouse, must not need a newer pip: installed offline with exactly that pip.
    """
    assert PYTHON39 is not None
    venv = tmp_path / "venv"
    subprocess.run([PYTHON39, "-m", "venv", str(venv)], check=True, timeout=120)
    old_pip = subprocess.run(
        [
            str(venv / "bin/python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pip==20.3.4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert old_pip.returncode == 0, old_pip.stderr[-2000:]
    extract(bundle, tmp_path / "bundle")
    (wheels,) = (tmp_path / "bundle").glob("dcguard-agent-*/wheels")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    version = subprocess.run(
        [str(venv / "bin/pip"), "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout
    assert version.startswith("pip 20.3.4 ")
    result = subprocess.run(
        offline(
            [str(venv / "bin/pip"), "install", "--no-index", "--find-links", str(wheels), "dcguard"]
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndepartment = "d"\nstate_dir = "{tmp_path / "state"}"\n'
        '[collector]\naddresses = ["127.0.0.1:1"]\ninsecure = true\n'
        "[sources]\ndisable_defaults = true\nhost = true\n"
    )
    report = subprocess.run(
        [str(venv / "bin/dcguard-agent"), "collect", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["sources"] == [
        {"name": "host", "success": True, "duration_seconds": pytest.approx(0, abs=5)}
    ]
