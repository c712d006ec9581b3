"""Shared helpers for the storage and backup source tests: building sources from config dicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dcguard.agent.sources import Source, SourceContext, load_all
from dcguard.agent.sources.backup import BackupSource
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb

FIXTURES = Path(__file__).parent / "fixtures"


def make_source(name: str, config: dict[str, Any], state_dir: Path) -> Any:
    """Build a registered source exactly as the agent does, from a config dict."""
    spec = load_all()[name]
    return spec.factory(
        Table(config, source="config test.toml"),
        SourceContext(host="testhost", interval=15.0, state_dir=state_dir),
    )


def collect(source: Source) -> pb.Report:
    report = pb.Report()
    source.collect(report)
    return report


def backup_source(tmp_path: Path, *jobs: dict[str, Any]) -> BackupSource:
    jobs_with_defaults = [{"rpo": "26h", **job} for job in jobs]
    source = make_source("backup", {"backup": jobs_with_defaults}, tmp_path / "state")
    assert isinstance(source, BackupSource)
    return source


REPLAY = """\
import json, sys, time
plan = json.load(open({plan!r}))
with open({calls!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "--scan-open" in sys.argv:
    sys.stdout.write(plan["scan"])
    sys.exit(plan.get("scan_exit", 0))
entry = plan["devices"][sys.argv[-1]]
time.sleep(entry.get("sleep", 0))
sys.stdout.write(open(entry["file"]).read()[: entry.get("cut")])
sys.exit(entry["exit"])
"""


class FakeDisks:
    """A replay script standing in for smartctl, and the plan of what each disk answers."""

    def __init__(self, tmp_path: Path) -> None:
        self.plan_file = tmp_path / "plan.json"
        self.calls_file = tmp_path / "calls.log"
        self.script = tmp_path / "smartctl"
        self.script.write_text(
            f"#!{sys.executable}\n"
            + REPLAY.format(plan=str(self.plan_file), calls=str(self.calls_file))
        )
        self.script.chmod(0o755)
        self.devices: dict[str, dict[str, Any]] = {}

    def set(
        self,
        device: str,
        fixture: str | Path,
        exit_code: int | None = None,
        cut: int | None = None,
        dtype: str = "sat",
        sleep: float = 0,
    ) -> None:
        path = fixture if isinstance(fixture, Path) else FIXTURES / fixture
        if exit_code is None:
            exit_code = json.loads(path.read_text())["smartctl"]["exit_status"]
        self.devices[device] = {
            "file": str(path),
            "exit": exit_code,
            "cut": cut,
            "type": dtype,
            "sleep": sleep,
        }
        self.write()

    def write(self, scan: str | None = None, scan_exit: int = 0) -> None:
        if scan is None:
            scan = json.dumps(
                {
                    "devices": [
                        {"name": d, "info_name": d, "type": e["type"], "protocol": "ATA"}
                        for d, e in self.devices.items()
                    ]
                }
            )
        self.plan_file.write_text(
            json.dumps({"scan": scan, "scan_exit": scan_exit, "devices": self.devices})
        )

    def calls(self) -> list[list[str]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]
