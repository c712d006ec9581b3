"""A Debian 12 root booted by systemd-nspawn: a real systemd as PID 1 for the unit tests.

The root is made once by debootstrap (minbase plus what the units, the
installer and Ansible need) under a cache directory, keyed by a hash of the
package list, and reused; each test boots a throwaway copy of it. This
machine's PID 1 need not be systemd: nspawn runs without machined here
(--register=no), and commands enter the container with nsenter.

    python -m tests.nspawn     # build (or find) the cached root and print its path
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

from tests.support import wait_for

T = TypeVar("T")

SUITE = "bookworm"
# systemd/dbus: PID 1 and systemctl; python3-venv: install-agent.sh makes a
# virtualenv; smartmontools: the agent's SMART source; rsyslog: /var/log/auth.log,
# as most Debian servers have it (why the journal alone does not do here: see
# tests/test_nspawn.py); openssh-server and sudo: Ansible connects over ssh and
# becomes root as it would on a real server.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "smartmontools",
    "rsyslog",
    "openssh-server",
    "sudo",
)
BUILDER_VERSION = "1"  # bump when the steps below change what a root holds
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def say(message: str) -> None:
    """One progress line on stderr (the first build is slow; the tests show it uncaptured)."""
    print(f"nspawn: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """$DCGUARD_TEST_CACHE, else /var/cache/dcguard-tests (root builds the root anyway)."""
    return Path(os.environ.get("DCGUARD_TEST_CACHE", "/var/cache/dcguard-tests"))


def root_key() -> str:
    text = "\n".join([SUITE, BUILDER_VERSION, *sorted(PACKAGES)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses for bookworm (deb822 or one-line lists)."""
    texts: list[str] = []
    for path in [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]:
        if path.suffix in {".list", ".sources"} or path.name == "sources.list":
            with contextlib.suppress(OSError):
                texts.append(path.read_text())
    for text in texts:
        # deb822 stanzas: URIs and Suites in one paragraph.
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            match = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match and match.group(2) == SUITE:
                return match.group(1)
    return DEFAULT_MIRROR


def why_not_here() -> str | None:
    """Why a container cannot be booted on this machine, or None if it can."""
    if os.geteuid() != 0:
        return "systemd-nspawn and debootstrap need root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if not shutil.which(tool):
            return (
                f"{tool} missing: apt-get install systemd-container debootstrap (tests/run.sh does)"
            )
    return None


def cannot_run(image: Path) -> str | None:
    """Why nspawn cannot start a container from image here (no privileges, ...), or None.

    A read-only run of /bin/true: what the machine refuses shows here in a
    second. A container that then fails to boot is a failure, not a skip.
    """
    result = subprocess.run(
        [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--read-only",
            "--directory",
            str(image),
            "/bin/true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return f"systemd-nspawn cannot start a container: {result.stderr.strip()[-500:]}"
    return None


CAP_SYS_RAWIO = 17


def _filesystem_type(path: Path) -> str:
    """The type of the filesystem path lies on, from the mount table (longest mountpoint)."""
    best, fstype = "", ""
    real = str(path.resolve())
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 3 or len(fields[1]) < len(best):
            continue
        if real == fields[1] or real.startswith(fields[1].rstrip("/") + "/"):
            best, fstype = fields[1], fields[2]
    return fstype


def nesting_limits(workdir: Path) -> str | None:
    """What this machine cannot give the agent's unit, when it is itself a container, or None.

    Seen running the suite inside systemd-nspawn: its bounding set lacks
    CAP_SYS_RAWIO (which the unit grants smartctl), and a tmpfs /tmp makes the
    copied root a tmpfs, which the filesystem source rightly ignores. A real
    server or VM has neither limit.
    """
    status = Path("/proc/self/status").read_text()
    found = re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M)
    bounding = int(found.group(1), 16) if found else 0
    if not bounding >> CAP_SYS_RAWIO & 1:
        return "this machine's capability bounding set lacks CAP_SYS_RAWIO (a container?)"
    if _filesystem_type(workdir) == "tmpfs":
        return f"{workdir} is on a tmpfs, which the agent's filesystem source ignores"
    return None


def root_image() -> Path:
    """The cached Debian 12 root for PACKAGES: built once (minutes), then found (instant)."""
    base = cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    target = base / f"debian12-{root_key()}"
    with open(base / ".lock", "a") as lock:
        # Exclusive: a parallel run waits for the build instead of repeating it, and no
        # copy of a root being removed below is in progress.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        for stale in base.glob("debian12-*"):
            say(f"removing {stale} (another package list)")
            remove(stale)
        building = base / f".building-{root_key()}"
        remove(building)
        mirror = debian_mirror()
        say(
            f"building a Debian 12 root in {target} from {mirror} "
            f"(first time only: a few minutes): {' '.join(PACKAGES)}"
        )
        started = time.monotonic()
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(building),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if result.returncode != 0:
            remove(building)
            raise RuntimeError(
                f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
            )
        prepare(building)
        (building / ".complete").write_text(f"{time.monotonic() - started:.0f}s\n")
        building.rename(target)
        say(f"built {target} in {time.monotonic() - started:.0f}s")
        return target


def remove(tree: Path) -> None:
    """rm -rf a root, unmounting first what a failed debootstrap left mounted in it (/proc)."""
    prefix = str(tree.resolve()) + "/"
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=60, check=False)
    shutil.rmtree(tree, ignore_errors=True)


def prepare(root: Path) -> None:
    """What every boot of the root needs, done once: a quiet, quick, contained boot."""
    # A fresh machine-id on every boot of a copy (systemd writes one if empty).
    (root / "etc/machine-id").write_text("")
    # The container shares the host's network namespace: its sshd listens
    # only where a test says (a drop-in written per test), never on the host's :22.
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    wants = root / "etc/systemd/system/multi-user.target.wants/ssh.service"
    wants.unlink(missing_ok=True)
    # Services that make no sense in a test container and slow its boot.
    for unit in (
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
        "dpkg-db-backup.timer",
    ):
        link = root / "etc/systemd/system/timers.target.wants" / unit
        link.unlink(missing_ok=True)
    (root / "etc/hostname").write_text("dcguard-nspawn\n")


class Container:
    """One booted throwaway copy of the root: `with Container(...) as c: c.run(...)`.

    It shares this machine's network namespace, so it reaches 127.0.0.1 here
    (what must run offline runs under `unshare --net` inside it). before_boot
    may edit the copy's files before systemd starts.
    """

    def __init__(
        self,
        image: Path,
        workdir: Path,
        name: str,
        *,
        before_boot: Callable[[Path], None] | None = None,
    ) -> None:
        self.image = image
        self.workdir = workdir
        self.name = name
        self.root = workdir / "root"
        self.console = workdir / "console.log"
        self.before_boot = before_boot
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def __enter__(self) -> Container:
        try:
            self.boot()
        except BaseException:
            self.poweroff()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.poweroff()

    def boot(self, timeout: float = 90.0) -> None:
        if not self.root.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            with open(self.image.parent / ".lock", "a") as lock:
                # Shared: a build for another package list (exclusive) waits to remove it.
                fcntl.flock(lock, fcntl.LOCK_SH)
                subprocess.run(
                    ["cp", "-a", "--reflink=auto", str(self.image), str(self.root)],
                    check=True,
                    timeout=300,
                )
        if self.before_boot:
            self.before_boot(self.root)
        argv = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--directory",
            str(self.root),
            "--machine",
            self.name,
            "--boot",
            "--console=pipe",
            # nspawn's default set lacks the one capability the agent's unit grants
            # (smartctl's SG_IO); a server's systemd has it, so the container gets it.
            "--capability=CAP_SYS_RAWIO",
        ]
        with open(self.console, "ab") as log:
            self.nspawn = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.leader = self._wait(self._find_leader, timeout, "the container's PID 1")
        # Booted: systemd says running or degraded (a unit that failed is the test's to judge).
        self._wait(
            lambda: (
                self.run(
                    "systemctl", "is-system-running", "--wait", timeout=timeout, check=False
                ).stdout.strip()
                in {"running", "degraded"}
            ),
            timeout,
            "the container's boot to finish",
        )

    def _find_leader(self) -> int:
        assert self.nspawn is not None
        if self.nspawn.poll() is not None:
            raise RuntimeError(
                f"systemd-nspawn exited {self.nspawn.returncode}:\n"
                f"{self.console.read_text(errors='replace')[-3000:]}"
            )
        for child in self._children(self.nspawn.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return child
        return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def _wait(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        """wait_for, with the container's console in the message when it times out."""
        try:
            return wait_for(predicate, timeout=timeout, interval=0.2, message=what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}:\n{self.console.read_text(errors='replace')[-3000:]}"
            ) from None

    def command(self, *argv: str) -> list[str]:
        """argv to run inside the container, as root, in all its namespaces."""
        return [
            "nsenter",
            f"--target={self.leader}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--cgroup",
            "--root",
            "--wd",
            "--",
            "/usr/bin/env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
            *argv,
        ]

    def run(
        self, *argv: str, timeout: float = 120.0, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit, check=False).stdout

    def poweroff(self, timeout: float = 30.0) -> None:
        """Power off, then kill what is left; always remove the copy.

        SIGTERM to nspawn asks the container's systemd to halt. If that does not
        end it in time, SIGKILL to the container's PID 1 ends every process of
        its PID namespace at once, and then nspawn itself.
        """
        proc, self.nspawn = self.nspawn, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if self.leader:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.leader, signal.SIGKILL)
                proc.kill()
                proc.wait(timeout)
        remove(self.root)


if __name__ == "__main__":
    reason = why_not_here()
    if reason:
        print(f"nspawn: cannot boot containers here: {reason}", file=sys.stderr)
        sys.exit(1)
    print(root_image())
