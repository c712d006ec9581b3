"""What the ransomware watcher costs, and how fast it sees an encryption.

Runs the `ransomware` source alone in a child process (tests/ransom_watch.py:
a real inotify watcher, handed out every 15 s like the agent's report cycle)
and measures that process's CPU from /proc, in real time:
1. idle: a tree of --files files (100,000 by default) in 1,000 directories
   under watch, nothing happening, for --idle seconds, scaled to an hour;
2. quiet scenarios in the same tree: gzip of logs, photos/archives/PDFs
   copied in, tar czf into the backup target, logrotate with compress
   (each must give zero events);
3. detection: tests/ransom_sim.py encrypting a share of 500 documents at full
   speed, with canaries (the default) and without (signs only): the time from
   the first file encrypted to the event, and the files encrypted by then.
Prints JSON. Exploratory on a shared machine: say how busy it was.

    .venv/bin/python bench/ransomware_watcher.py [--files 100000] [--idle 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import tree_cpu_seconds, tree_rss_mib
from tests.ransomware_support import (
    docx_bytes,
    jpeg_bytes,
    pdf_bytes,
    populate,
    text_bytes,
    zip_bytes,
)

SIM = ROOT / "tests" / "ransom_sim.py"
WATCH = ROOT / "tests" / "ransom_watch.py"
REPORT_INTERVAL = 15.0


class Watcher:
    """The child process, its events (read in a thread) and its CPU."""

    def __init__(self, work: Path, config: dict[str, Any], report_interval: float) -> None:
        # Not the machine's dpkg lock and log: on a shared machine someone's apt-get would
        # hold back every sign for a minute (as it should on a real server).
        config["security"]["ransomware"].update(package_locks=[], package_logs=[])
        path = work / f"config-{time.monotonic_ns()}.json"
        path.write_text(json.dumps({"state_dir": str(work / "state"), **config}))
        self.process = subprocess.Popen(
            [sys.executable, str(WATCH), str(path), "--report", str(report_interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.ready = json.loads(self.process.stdout.readline())
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def cpu(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_tree(root: Path, files: int) -> None:
    directories = 1000
    per = max(1, files // directories)
    payload = text_bytes(1, 512)
    for d in range(directories):
        directory = root / f"d{d // 100:02d}" / f"p{d:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        for i in range(per):
            (directory / f"f{i:03d}.txt").write_bytes(payload)


def measure(watcher: Watcher, action: Any, settle: float = REPORT_INTERVAL + 2) -> dict[str, Any]:
    before_events = len(watcher.events)
    cpu0, wall0 = watcher.cpu(), time.monotonic()
    action()
    time.sleep(settle)  # the watcher finishes sampling; one report hands events out
    return {
        "cpu_s": round(watcher.cpu() - cpu0, 3),
        "wall_s": round(time.monotonic() - wall0, 1),
        "events": len(watcher.events) - before_events,
    }


def quiet_scenarios(data: Path, backup: Path, work: Path) -> dict[str, Any]:
    logs = data / "logs"
    logs.mkdir()
    for i in range(200):
        (logs / f"app{i}.log").write_bytes(text_bytes(i, 100_000))
    usb = work / "usb"
    usb.mkdir()
    for i in range(100):
        (usb / f"anh-{i}.jpg").write_bytes(jpeg_bytes(200_000))
        (usb / f"tai-lieu-{i}.zip").write_bytes(zip_bytes(100_000))
        (usb / f"ban-scan-{i}.pdf").write_bytes(pdf_bytes(160))
        (usb / f"hop-dong-{i}.docx").write_bytes(docx_bytes(i))
    rotated = data / "rotated"
    rotated.mkdir()
    for i in range(50):
        (rotated / f"svc{i}.log").write_bytes(text_bytes(i, 50_000))
    conf = work / "logrotate.conf"
    conf.write_text(f"{rotated}/*.log {{\n rotate 3\n compress\n nodelaycompress\n}}\n")
    return {
        "gzip 200 logs (20 MB)": lambda: subprocess.run(
            ["gzip", *map(str, sorted(logs.glob("*.log")))], check=True
        ),
        "copy 400 JPEG/ZIP/PDF/DOCX (~50 MB)": lambda: shutil.copytree(usb, data / "usb-copy"),
        "tar czf the share into the backup target": lambda: subprocess.run(
            [
                "tar",
                "czf",
                str(backup / "share.tar.gz"),
                "--exclude",
                "./backup",
                "-C",
                str(data),
                ".",
            ],
            check=True,
        ),
        "logrotate compress, 50 logs": lambda: subprocess.run(
            ["logrotate", "-f", "-s", str(work / "lr.state"), str(conf)], check=True
        ),
    }


def detection(work: Path, canary: bool, delay: float) -> dict[str, Any]:
    share = work / f"share-{'canary' if canary else 'signs'}-{delay}"
    populate(share, directories=10, per_directory=50)
    watcher = Watcher(
        work,
        {"security": {"ransomware": {"paths": [str(share)], "canary": canary}}},
        report_interval=1.0,
    )
    try:
        sim = subprocess.run(
            [sys.executable, str(SIM), str(share), "--delay", str(delay)],
            capture_output=True,
            text=True,
            check=True,
        )
        deadline = time.monotonic() + 30
        while not watcher.events and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
    finally:
        watcher.stop()
    done = [float(line.split(" ", 1)[0]) for line in sim.stdout.splitlines()]
    if not watcher.events:
        return {"files": len(done), "detected": False}
    first = min(watcher.events, key=lambda e: e["time"])
    return {
        "files": len(done),
        "attack_seconds": round(done[-1] - done[0], 2),
        "first_sign": first["sign"],
        "latency_s": round(first["time"] - done[0], 3),
        "files_encrypted_before_event": sum(1 for t in done if t <= first["time"]),
        "files_touched_reported": first["files_touched"],
        "signs": sorted({e["sign"] for e in watcher.events}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--idle", type=float, default=300.0, help="seconds of idle measured")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dcguard-rw-bench-"))
    try:
        tree = work / "data"
        backup = tree / "backup"
        backup.mkdir(parents=True)
        t0 = time.monotonic()
        make_tree(tree, args.files)
        made = time.monotonic() - t0
        config = {
            "security": {"ransomware": {"paths": [str(tree)]}},
            "backup": [{"name": "nightly", "kind": "files", "rpo": "26h", "path": str(backup)}],
        }
        watcher = Watcher(work, config, REPORT_INTERVAL)
        setup_cpu = watcher.cpu()  # interpreter start, imports, the walk that sets the watches
        setup_rss = tree_rss_mib(watcher.process.pid)
        try:
            idle_cpu0 = watcher.cpu()
            time.sleep(args.idle)
            idle = watcher.cpu() - idle_cpu0
            scenarios = {
                name: measure(watcher, action)
                for name, action in quiet_scenarios(tree, backup, work).items()
            }
        finally:
            watcher.stop()
        result = {
            "files": args.files,
            "tree_made_s": round(made, 1),
            "watch_setup_s": round(watcher.ready["ready"], 2),
            "process_cpu_s_at_ready": round(setup_cpu, 3),
            "process_rss_mib_at_ready": round(setup_rss, 1),
            "directories_watched": watcher.ready["directories"],
            "idle_measured_s": args.idle,
            "idle_cpu_s": round(idle, 3),
            "idle_cpu_s_per_hour": round(idle * 3600 / args.idle, 3),
            "quiet": scenarios,
            "detection": {
                f"{'canary' if canary else 'signs only'}, "
                f"{'full speed' if not delay else f'{1 / delay:.0f} files/s'}": detection(
                    work, canary, delay
                )
                for canary in (True, False)
                for delay in (0.0, 0.01)
            },
            "loadavg": os.getloadavg(),
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
